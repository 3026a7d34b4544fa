include $(sort $(wildcard $(BR2_EXTERNAL_IPA_PATH)/package/*/*.mk))
