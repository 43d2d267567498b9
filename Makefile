# The two commands of the README:
#   make run    set up (packages, sources), build, run the gateway on its default config
#   make test   set up, build the ASan/UBSan tree and run every test
# Other targets: release, asan, fuzz, bench, setup, clean.
JOBS ?= $(shell nproc)
SETUP_STAMP := build/.setup-done

.PHONY: all run test release asan fuzz bench setup clean unit integration

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

clean:
	rm -rf build build-asan build-fuzz
