# The classroom labs: labs/<name>, each a tiny apps/labs/<name>_main.c over the
# lab framework (labs/lab*.c, in liblabs.a) and the shared front end
# apps/labs/lab_cli.c.  A new lab adds its name to LAB_NAMES.
LAB_NAMES := paging blocksize planning sharing preemption prefix batching lora bias-sheet
LAB_BINS  := $(LAB_NAMES:%=$(BINDIR)/labs/%)
BINS += $(LAB_BINS)
$(LAB_BINS): $(BINDIR)/labs/%: $(BUILD)/apps/labs/%_main.o $(BUILD)/apps/labs/lab_cli.o $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
