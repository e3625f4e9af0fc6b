evk_test(test_log SOURCES test_log.c)
