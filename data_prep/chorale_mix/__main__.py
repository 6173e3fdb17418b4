"""`python -m data_prep.chorale_mix --out=DIR`: renders ChoraleMix (see the package docstring)."""
from absl import app

from data_prep.chorale_mix import dataset

if __name__ == '__main__':
  dataset.define_flags()
  app.run(dataset.main)
