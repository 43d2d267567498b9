# Cross-building for Debian arm64 with Debian 12's cross toolchain
# (crossbuild-essential-arm64) and the arm64 multiarch -dev packages, which install
# their headers and static archives under /usr/include/aarch64-linux-gnu and
# /usr/lib/aarch64-linux-gnu beside the amd64 ones. scripts/setup-cross.sh arm64 installs them;
# 'make cross ARCH=arm64' uses this file (build dir build-cross-arm64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_AR aarch64-linux-gnu-ar CACHE FILEPATH "")
set(CMAKE_RANLIB aarch64-linux-gnu-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP aarch64-linux-gnu-strip CACHE FILEPATH "")
# find_library looks in /usr/lib/aarch64-linux-gnu (multiarch) and only there for libraries:
# never pick an amd64 archive from /usr/lib/x86_64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# Run target programs (try_run, tests) under qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
