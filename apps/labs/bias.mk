# labs/bias: the investment-bias experiment (issue 5); its library is labs/bias_*.c.
BINS += $(BINDIR)/labs/bias
$(BINDIR)/labs/bias: $(BUILD)/apps/labs/bias_main.o $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
