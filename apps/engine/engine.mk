# apps/engine: the CUDA engine's commands (engine/run, engine/bench; cli.c holds
# the number options they share with engine/serve; bench_moe.c is engine/bench
# --moe-layer).  `make engine-fuzz` runs the safetensors libFuzzer harness
# alone (FUZZ_SECS, default 60); `make fuzz` runs it with the tokenizer's.
BINS += $(BINDIR)/engine/run $(BINDIR)/engine/bench
$(BINDIR)/engine/run: $(BUILD)/apps/engine/run_main.o $(BUILD)/apps/engine/cli.o $(BUILD)/apps/engine/cli_lora.o \
                     $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
$(BINDIR)/engine/bench: $(BUILD)/apps/engine/bench_main.o $(BUILD)/apps/engine/bench_moe.o $(BUILD)/apps/engine/bench_awq.o \
                       $(BUILD)/apps/engine/cli.o $(BUILD)/apps/engine/cli_lora.o $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)

.PHONY: engine-fuzz
engine-fuzz: ## fuzz the safetensors header parser alone with libFuzzer (clang), FUZZ_SECS (default 60)
	@bash tests/fuzz/run_st_fuzz.sh $(FUZZ_SECS)
