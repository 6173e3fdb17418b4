"""configs/quality/lstm.py (the w/o-STFT combination with the encoder BiLSTM, 3000 steps: the screening base of
configs/best.py) with the speed augmentation: every source of a training example resampled to play k semitones
higher and faster, k drawn from -2..2 (data.speed_semitones = 2). Why: Demucs v2 reports +0.5 dB on MUSDB18 from
pitch/tempo augmentation, and ChoraleMix's 83 training tracks hold each chorale in one key, so the inner voices
("other", alto + tenor) and the melody cover a narrow set of registers; a voice a tone higher or lower, at
another tempo, is new material for the codes to tell "other" from vocals by timbre rather than register."""
from configs.quality import lstm


def get_config():
  config = lstm.get_config()
  config.data.speed_semitones = 2
  return config
