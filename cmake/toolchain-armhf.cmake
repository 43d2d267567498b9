# Cross-building for Debian armhf with Debian 12's cross toolchain
# (crossbuild-essential-armhf) and the armhf multiarch -dev packages, which install
# their headers and static archives under /usr/include/arm-linux-gnueabihf and
# /usr/lib/arm-linux-gnueabihf beside the amd64 ones. scripts/setup-cross.sh armhf installs them;
# 'make cross ARCH=armhf' uses this file (build dir build-cross-armhf).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_AR arm-linux-gnueabihf-ar CACHE FILEPATH "")
set(CMAKE_RANLIB arm-linux-gnueabihf-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP arm-linux-gnueabihf-strip CACHE FILEPATH "")
# find_library looks in /usr/lib/arm-linux-gnueabihf (multiarch) and only there for libraries:
# never pick an amd64 archive from /usr/lib/x86_64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# Run target programs (try_run, tests) under qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static -L /usr/arm-linux-gnueabihf)
