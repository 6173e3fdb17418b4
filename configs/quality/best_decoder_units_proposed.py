"""The paper's ablation at configs/best.py (configs/quality/best_lstm_decoder_units.py, 8000 steps): the paper's
proposed loss, i.e. configs/best.py's training with its STFT-magnitude terms restored at the paper's weights.
configs/quality/best_lstm_decoder_units.py itself is the paper's "w/o STFT" row of this ablation;
configs/quality/best_decoder_units_no_complement.py is "w/o complement". Training only: the sweep scores every row
with the 172-frame BiLSTM context of the quality rows.

  python scripts/sweep.py --configs=configs/quality/best_decoder_units_proposed.py --seeds=0,1 --steps=8000 \\
      --data_dir=data/full/tfds --max_seconds=10
"""
from configs.quality import best_lstm_decoder_units
from configs.quality import best_lstm_proposed


def get_config():
  return best_lstm_proposed.with_paper_stft(best_lstm_decoder_units.get_config())
