# Event object, JSON codec and Kafka wire format (lib/src/schema/: event.c, json.c).
evk_test(test_event SOURCES test_event.c codec_support.c LABELS unit)
evk_test(test_json SOURCES test_json.c codec_support.c LABELS unit)
evk_test(test_json_stream SOURCES test_json_stream.c LABELS unit)
