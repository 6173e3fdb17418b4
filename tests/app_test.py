"""Tests of the interactive page: its handlers without a browser, and the page end to end in headless Chromium."""
import base64
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import soundfile

import inference_test  # tests/ is on sys.path
from srcvq_jax import app as app_lib
from srcvq_jax import codes as codes_lib
from srcvq_jax import inference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM, CHROMEDRIVER = shutil.which('chromium'), shutil.which('chromedriver')


@pytest.fixture(scope='module')
def separator(tmp_path_factory):
  from configs import ci  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('app') / 'run'
  inference_test.save_checkpoint(ci.get_config(), workdir)
  return inference.load(str(workdir), window=inference_test.WINDOW)


def _song(path, seconds=0.6, rate=8000, seed=0, channels=2):
  audio = np.random.default_rng(seed).normal(scale=0.2, size=(int(seconds * rate), channels)).astype(np.float32)
  soundfile.write(str(path), audio, rate, subtype='FLOAT')
  return audio


def test_upload_edit_audio_without_a_browser(separator, tmp_path):
  backend = app_lib.Backend(separator, tmp_dir=str(tmp_path))
  session = backend.new_session()
  audio = _song(tmp_path / 'a.wav')
  view = backend.upload(session, 'a.wav', str(tmp_path / 'a.wav'))
  assert view['sources'] == list(separator.sources) and len(view['codes'][0]) == view['frames']
  assert view['bitrate_kbps'] > 0 and len(view['entropy_kbps']) == 4 and not view['has_prior']
  view = backend.edit(session, [['range', ''], ['mute', 'vocals']])
  assert not any(view['active'][0]) and all(view['active'][1])
  edited, rate = backend.audio(session, 'edited')
  expected = separator.apply(audio, np.array([0.0, 1.0, 1.0, 1.0]))
  assert rate == 8000
  np.testing.assert_allclose(edited, expected, atol=1e-5)
  # Codes download round-trips; a second session does not see the first one's song.
  path = tmp_path / 'edited.codes.npz'
  path.write_bytes(backend.codes_file(session))
  assert not codes_lib.load(str(path)).active[:, 0].any()
  other = backend.new_session()
  with pytest.raises(app_lib.AppError, match='no song yet'):
    backend.audio(other, 'edited')
  _song(tmp_path / 'b.wav', seed=1)
  backend.upload(other, 'b.wav', str(tmp_path / 'b.wav'))
  assert backend.sessions[session].song.name == 'a.wav'
  # Swap needs the second song; with it, the slot's codes are the other song's.
  with pytest.raises(app_lib.AppError, match='second song'):
    backend.edit(session, [['swap', 'bass']])
  backend.upload(session, 'b.wav', str(tmp_path / 'b.wav'), role='other')
  view = backend.edit(session, [['swap', 'bass']])
  np.testing.assert_array_equal(np.array(view['codes'][1]), backend.sessions[session].other.codes.codes[:, 1])


def test_bad_uploads_and_edits_are_messages(separator, tmp_path, monkeypatch):
  backend = app_lib.Backend(separator, tmp_dir=str(tmp_path))
  session = backend.new_session()
  (tmp_path / 'x.wav').write_bytes(b'not audio at all')
  with pytest.raises(app_lib.AppError, match='x.wav: cannot read audio'):
    backend.upload(session, 'x.wav', str(tmp_path / 'x.wav'))
  _song(tmp_path / 'long.wav', seconds=1.0)
  monkeypatch.setattr(app_lib, 'MAX_SECONDS', 0.5)
  with pytest.raises(app_lib.AppError, match='the limit is'):
    backend.upload(session, 'long.wav', str(tmp_path / 'long.wav'))
  monkeypatch.setattr(app_lib, 'MAX_SECONDS', 600.0)
  backend.upload(session, 'long.wav', str(tmp_path / 'long.wav'))
  for edits, message in (([['mute', 'piano']], "unknown source 'piano'"), ([['range', '0f:99999f'], ['mute', 'bass']],
                                                                            'not within'),
                         ([['regenerate', {'temperature': 1.0}]], 'no prior'), ([['explode', 1]], 'unknown edit')):
    with pytest.raises(app_lib.AppError, match=message):
      backend.edit(session, edits)
  with pytest.raises(app_lib.AppError, match='unknown session'):
    backend.edit('nope', [])


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture
def server(separator, tmp_path):
  import uvicorn  # pylint: disable=g-import-not-at-top
  port = _free_port()
  backend = app_lib.Backend(separator, tmp_dir=str(tmp_path / 'app'))
  os.makedirs(backend.tmp_dir)
  server = uvicorn.Server(uvicorn.Config(app_lib.create_app(backend), host='127.0.0.1', port=port,
                                         log_level='warning'))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.time() + 30
  while not server.started and time.time() < deadline:
    time.sleep(0.05)
  assert server.started
  yield f'http://127.0.0.1:{port}', backend
  server.should_exit = True
  thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason='needs Debian chromium + chromium-driver')
def test_page_in_headless_chromium(server, separator, tmp_path):
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

  url, _ = server
  audio = _song(tmp_path / 'song.wav', seconds=1.0)
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1200,900',
                   '--disable-gpu', '--no-first-run', '--disable-extensions'):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    driver.set_script_timeout(60)
    driver.get(url + '/')
    started = time.time()
    driver.find_element(By.ID, 'song-file').send_keys(str(tmp_path / 'song.wav'))
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: d.find_element(By.TAG_NAME, 'body').get_attribute('data-version') == '1')
    seconds_to_grids = time.time() - started
    assert len(driver.find_elements(By.CSS_SELECTOR, 'canvas.grid')) == 4
    driver.find_element(By.ID, 'mute-vocals').click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, 'body').get_attribute('data-version') == '2')
    assert driver.find_element(By.ID, 'error').text == ''
    # The edited audio's bytes as the browser gets them (the audio element's source).
    encoded = driver.execute_async_script(
        'const done = arguments[arguments.length - 1];'
        'fetch(document.getElementById("audio-edited").src).then(r => r.arrayBuffer()).then(b => {'
        '  let s = ""; const u = new Uint8Array(b);'
        '  for (let i = 0; i < u.length; i++) { s += String.fromCharCode(u[i]); }'
        '  done(btoa(s)); });')
    edited, rate = soundfile.read(io.BytesIO(base64.b64decode(encoded)), dtype='float32', always_2d=True)
    expected = separator.apply(audio, np.array([0.0, 1.0, 1.0, 1.0]))
    assert rate == 8000 and edited.shape == expected.shape
    np.testing.assert_allclose(edited, np.clip(expected, -1, 1), atol=2 / 32768)
    driver.save_screenshot(str(tmp_path / 'page.png'))
    assert os.path.getsize(tmp_path / 'page.png') > 1000
    print(f'upload to grids: {seconds_to_grids:.1f} s')
  finally:
    driver.quit()
