# Configuration, error codes and the schema catalog.
evk_test(test_config SOURCES test_config.c LABELS unit)
evk_test(test_catalog SOURCES test_catalog.c LABELS unit)
