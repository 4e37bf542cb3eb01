# judge: SIGKILL of one rank, rerun, identical judgments; a new judge on a finished run only runs
# that judge; a misconfigured judge fails before any unit (the golden fixture judges on a tiny pair).
sf_add_script_test(e2e_judge_resume ${CMAKE_CURRENT_LIST_DIR}/judge_resume.sh e2e-judge-resume)
set_tests_properties(e2e_judge_resume PROPERTIES LABELS "judge;e2e" PROCESSORS 2 TIMEOUT 600)

# label_prob judges split over a tensor group, as two MPI ranks.
sf_add_mpi_test(judge_tp_mpi_np2 test_judge 2 judge *DISABLED_TpJudge*)
