# engine: the CUDA engine's commands (engine/run, engine/bench) and the
# safetensors fuzzer.  `make engine-fuzz` runs the libFuzzer harness for ~60 s.
BINS += $(BINDIR)/engine/run $(BINDIR)/engine/bench
$(BINDIR)/engine/run: $(BUILD)/engine/run_main.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
$(BINDIR)/engine/bench: $(BUILD)/engine/bench_main.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)

.PHONY: engine-fuzz
engine-fuzz: ## fuzz the safetensors header parser with libFuzzer (clang), about 60 s
	@bash tests/fuzz/run_st_fuzz.sh
fuzz: engine-fuzz
