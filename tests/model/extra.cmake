# Tensor parallelism: the DISABLED_Tp* suites of test_model as two MPI ranks (T = 2 against the
# whole model on every golden fixture; vocabulary-split operations).
sf_add_mpi_test(model_tp_mpi_np2 test_model 2 model *DISABLED_Tp*)

# The golden model tests again with the hand-written kernels held to AVX2 (SUPERFICIAL_MAX_ISA), as
# an AVX2-only CPU (EPYC Rome or Milan, say) runs them, and with none at all (torch's paths only).
foreach(isa avx2 none)
  add_test(NAME model_golden_max_isa_${isa} COMMAND test_model --gtest_filter=Variants/Golden.*)
  set_tests_properties(model_golden_max_isa_${isa} PROPERTIES LABELS model ENVIRONMENT SUPERFICIAL_MAX_ISA=${isa})
endforeach()
