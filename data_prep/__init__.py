"""Dataset builders and converters: MUSDB18 / MUSDB18-HQ / ChoraleMix -> TFDS TFRecords (`python -m data_prep.build`)."""
