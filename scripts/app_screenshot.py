"""A screenshot of the interactive page with a trained model, and the time from upload to grids.

  python scripts/app_screenshot.py --workdir=VQVAE_DIR [--prior_workdir=PRIOR_DIR] --song=song.wav \\
      --out=docs/app_screenshot.png [--mute=vocals]

Starts the app on a free loopback port, opens it in Debian's headless Chromium (Selenium), uploads --song, waits
for the code grids, mutes --mute, and saves the screenshot; prints one JSON line with the song's length and the
seconds from upload to grids and from the click to the edited audio's grids.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--prior_workdir', default=None)
  parser.add_argument('--song', required=True)
  parser.add_argument('--out', default=os.path.join(REPO, 'docs', 'app_screenshot.png'))
  parser.add_argument('--mute', default='vocals')
  args = parser.parse_args()

  import soundfile  # pylint: disable=g-import-not-at-top
  import uvicorn  # pylint: disable=g-import-not-at-top
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

  from srcvq_jax import app as app_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax import generate_bass, inference  # pylint: disable=g-import-not-at-top

  separator = inference.load(args.workdir)
  prior = generate_bass.load_prior(args.prior_workdir, separator)[1] if args.prior_workdir else None
  tmp = tempfile.mkdtemp(prefix='srcvq_app_')
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  server = uvicorn.Server(uvicorn.Config(app_lib.create_app(app_lib.Backend(separator, prior, tmp_dir=tmp)),
                                         host='127.0.0.1', port=port, log_level='warning'))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  while not server.started:
    time.sleep(0.05)
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which('chromium')
  for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1300,1000'):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=options)
  try:
    driver.get(f'http://127.0.0.1:{port}/')
    version = lambda d: d.find_element(By.TAG_NAME, 'body').get_attribute('data-version')
    started = time.time()
    driver.find_element(By.ID, 'song-file').send_keys(os.path.abspath(args.song))
    WebDriverWait(driver, 600).until(lambda d: version(d) == '1')
    to_grids = time.time() - started
    started = time.time()
    driver.find_element(By.ID, f'mute-{args.mute}').click()
    WebDriverWait(driver, 600).until(lambda d: version(d) == '2')
    to_edit = time.time() - started
    driver.save_screenshot(args.out)
  finally:
    driver.quit()
    server.should_exit = True
    thread.join(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)
  info = soundfile.info(args.song)
  print(json.dumps({'name': 'app_upload_to_grids', 'song_seconds': round(info.duration, 2),
                    'sample_rate': info.samplerate, 'upload_to_grids_s': round(to_grids, 2),
                    'mute_to_grids_s': round(to_edit, 2), 'screenshot': os.path.relpath(args.out, REPO)}))


if __name__ == '__main__':
  main()
