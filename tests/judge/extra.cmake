# judge: SIGKILL of one rank, rerun, identical judgments; a new judge on a finished run only runs
# that judge; a misconfigured judge fails before any unit (the golden fixture judges on a tiny pair).
add_test(NAME e2e_judge_resume
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/judge_resume.sh $<TARGET_FILE:superficial> ${CMAKE_SOURCE_DIR}
                 ${SF_SHARED_DIR}/data ${CMAKE_BINARY_DIR}/e2e-judge-resume)
set_tests_properties(e2e_judge_resume PROPERTIES LABELS "judge;e2e" PROCESSORS 2 TIMEOUT 600)
