# Print one expanded Makefile variable: make -f Makefile -f printvar.mk print-NAME
print-%:
	@printf "%s\n" "$($*)"
