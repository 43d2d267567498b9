# The two commands of the README:
#   make run    set up (packages, sources), build, run the gateway on its default config
#   make test   set up, build the ASan/UBSan tree and run every test
# Other targets: release, asan, fuzz, bench, setup, clean,
#   deb [ARCH=...]  dist/edgepoint_<version>_<arch>.deb (docs/operations.md)
JOBS ?= $(shell nproc)
SETUP_STAMP := build/.setup-done

.PHONY: all run test release asan fuzz bench setup clean unit integration deb

all: release

setup: $(SETUP_STAMP)
$(SETUP_STAMP): scripts/setup.sh
	./scripts/setup.sh
	mkdir -p build && touch $@

release: setup
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON >/dev/null
	cmake --build build -j$(JOBS)

asan: setup
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEP_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)

fuzz: setup
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DEP_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j$(JOBS)

run: release
	./build/edgepoint serve

test: asan release fuzz
	./tests/run-all.sh

unit: asan
	./build-asan/ep_unit

integration: asan
	/usr/bin/python3 -m pytest -q tests/integration

bench: release
	./bench/run.sh

# ARM binaries (README, "ARM binaries"): 'make cross ARCH=arm64|armhf' builds a static,
# stripped build-cross-ARCH/edgepoint with Debian's cross toolchain (installed by
# scripts/setup-cross.sh); 'make cross-test ARCH=...' runs its unit tests and the smoke
# test under qemu-user. make test builds arm64 too: tests/run-all.sh runs its tests.
CROSS_ARCHES := arm64 armhf
.PHONY: cross cross-test cross-arm64
cross: setup
	@case " $(CROSS_ARCHES) " in *" $(ARCH) "*) ;; *) \
		echo "make cross: ARCH=arm64 or ARCH=armhf (not '$(ARCH)')" >&2; exit 2 ;; esac
	./scripts/setup-cross.sh $(ARCH)
	cmake -S . -B build-cross-$(ARCH) -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-$(ARCH).cmake \
		-DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON "-DCMAKE_EXE_LINKER_FLAGS=-static -s" >/dev/null
	cmake --build build-cross-$(ARCH) -j$(JOBS)
	file build-cross-$(ARCH)/edgepoint

cross-test: cross
	./tests/cross/run.sh $(ARCH)

cross-arm64:
	$(MAKE) cross ARCH=arm64
test: cross-arm64

# This machine's architecture packages build/edgepoint (make release); another,
# build-cross-ARCH/edgepoint (make cross).
ARCH ?= $(shell dpkg --print-architecture)
deb: $(if $(filter $(ARCH),$(shell dpkg --print-architecture)),release,cross)
	./scripts/mkdeb.sh $(ARCH)

clean:
	rm -rf build build-asan build-fuzz dist
