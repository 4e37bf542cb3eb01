# judge: SIGKILL of one rank, rerun, identical judgments; a new judge on a finished run only runs
# that judge; a misconfigured judge fails before any unit (the golden fixture judges on a tiny pair).
add_test(NAME e2e_judge_resume
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/judge_resume.sh $<TARGET_FILE:superficial> ${CMAKE_SOURCE_DIR}
                 ${SF_SHARED_DIR}/data ${CMAKE_BINARY_DIR}/e2e-judge-resume)
set_tests_properties(e2e_judge_resume PROPERTIES LABELS "judge;e2e" PROCESSORS 2 TIMEOUT 600)

# label_prob judges split over a tensor group, as two MPI ranks.
find_program(SF_MPIEXEC NAMES mpirun mpiexec)
if(SF_MPIEXEC)
  add_test(NAME judge_tp_mpi_np2
           COMMAND ${SF_MPIEXEC} --oversubscribe -np 2 $<TARGET_FILE:test_judge> --gtest_also_run_disabled_tests
                   --gtest_filter=*DISABLED_TpJudge*)
  set_tests_properties(judge_tp_mpi_np2 PROPERTIES LABELS "judge;mpi" PROCESSORS 2 TIMEOUT 300
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
endif()
