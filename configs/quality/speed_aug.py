"""configs/quality/lstm.py (the w/o-STFT combination with the encoder BiLSTM, 3000 steps: the screening base of
configs/best.py) with the speed augmentation: every source of a training example resampled to play k semitones
higher and faster, k drawn from -2..2 (data.speed_semitones = 2). Why: Demucs v2 reports +0.5 dB on MUSDB18
from pitch/tempo augmentation. ChoraleMix's tracks are already transposed (-5..5 semitones) and played at 72-100
quarter notes per minute, but each of the 83 training tracks is one program per part at one tempo; resampling
moves a part's formants and attack times with its pitch (as a tape played faster does), so every program is heard
with more timbres and note lengths: more material for telling "other" (alto + tenor) from vocals by timbre."""
from configs.quality import lstm


def get_config():
  config = lstm.get_config()
  config.data.speed_semitones = 2
  return config
