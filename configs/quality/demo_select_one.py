"""configs/demo.py with half the selective targets one present source alone (`data.select_one_prob = 0.5`, the lever
configs/best.py took on 2026-12-07): the demo-sized candidate for that lever, at the demo's budget (3000 steps of the
same model, so the same minutes), measured side by side with configs/demo.py on the demo's render (docs/results.md,
"Demo"):

  python scripts/sweep.py --configs=configs/quality/demo_select_one.py --seeds=0,1 --steps=3000 \\
      --data_dir=data/tfds --runs=runs/demo_sweep --results=docs/sweep/demo_results.jsonl \\
      --results_md=docs/sweep/demo.md --png=docs/sweep/demo_curves.png
"""
from configs import demo


def get_config():
  config = demo.get_config()
  config.data.select_one_prob = 0.5
  return config
