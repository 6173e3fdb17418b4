"""Model stages: shapes/dtypes, conv-as-matmul layers equal direct convolutions, selection semantics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from srcvq_jax import config_lib
from srcvq_jax import errors
from srcvq_jax import fsq
from srcvq_jax import batch_spec
from srcvq_jax import synthetic_data
from srcvq_jax import models
from srcvq_jax.models import layers
from srcvq_jax.models import vqvae


# Every form of every layer computes the same function of the same params (layers.LayerForms).
STRIDED_FORMS = [layers.MATMUL, layers.LayerForms(strided='blocks'), layers.LayerForms(strided='pairs'), layers.NATIVE]
TRANSPOSED_FORMS = [layers.MATMUL, layers.LayerForms(transposed='input'), layers.LayerForms(transposed='output'),
                    layers.NATIVE]


# 'auto' takes both matmul forms here: block product + overlap (s * Cin >= Cout) and paired blocks (s * Cin < Cout,
# as in configs/base.py's first layer: 4 x 2 -> 32).
@pytest.mark.parametrize('forms', STRIDED_FORMS, ids=str)
@pytest.mark.parametrize('stride,cin,cout,length', [(4, 2, 8, 64), (3, 5, 4, 27), (2, 1, 3, 10), (4, 2, 32, 64)])
def test_strided_conv_equals_direct_convolution(stride, cin, cout, length, forms):
  conv = layers.StridedConv(cin, cout, stride, forms=forms, rngs=nnx.Rngs(0))
  conv.bias[...] = jax.random.normal(jax.random.key(1), (cout,))
  x = jax.random.normal(jax.random.key(2), (2, length, cin))
  reference = jax.lax.conv_general_dilated(
      x, conv.kernel[...], window_strides=(stride,), padding=[(stride // 2, stride - stride // 2)],
      dimension_numbers=('NWC', 'WIO', 'NWC')) + conv.bias[...]
  np.testing.assert_allclose(conv(x), reference, rtol=1e-5, atol=1e-5)
  assert conv(x).shape == (2, length // stride, cout)


@pytest.mark.parametrize('forms', [layers.MATMUL, layers.NATIVE], ids=['matmul', 'native'])
@pytest.mark.parametrize('in_features', [8, 32, 48])  # matmul: two matmuls up to 32 input features, then one
def test_gated_dense_equals_glu_of_dense(in_features, forms):
  gated = layers.GatedDense(in_features, 2 * 16, forms=forms, rngs=nnx.Rngs(0))
  gated.bias[...] = jax.random.normal(jax.random.key(1), (2 * 16,))
  x = jax.random.normal(jax.random.key(2), (2, 7, in_features))
  reference = layers.glu(x @ gated.kernel[...] + gated.bias[...])
  np.testing.assert_allclose(gated(x), reference, rtol=1e-5, atol=1e-5)
  grads = jax.grad(lambda k: jnp.sum(jnp.sin(layers.glu(x @ k + gated.bias[...]))))(gated.kernel[...])
  graphdef, params = nnx.split(gated)
  ours = jax.grad(lambda p: jnp.sum(jnp.sin(nnx.merge(graphdef, p)(x))))(params)
  np.testing.assert_allclose(ours['kernel'][...], grads, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('forms', TRANSPOSED_FORMS, ids=str)
@pytest.mark.parametrize('stride,cin,cout,frames', [(4, 8, 2, 16), (3, 4, 5, 9), (2, 3, 1, 5), (4, 2, 8, 6)])
def test_transposed_conv_is_the_adjoint_of_strided_conv(stride, cin, cout, frames, forms):
  """TransposedConv with kernel W is the transpose of the linear map StridedConv(cout -> cin) with W^T."""
  tconv = layers.TransposedConv(cin, cout, stride, forms=forms, rngs=nnx.Rngs(0))
  conv = layers.StridedConv(cout, cin, stride, rngs=nnx.Rngs(1))
  conv.kernel[...] = tconv.kernel[...].transpose(0, 2, 1)
  x = jax.random.normal(jax.random.key(2), (2, frames, cin))
  _, vjp = jax.vjp(lambda audio: conv(audio) - conv.bias[...], jnp.zeros((2, frames * stride, cout)))
  np.testing.assert_allclose(tconv(x) - tconv.bias[...], vjp(x)[0], rtol=1e-5, atol=1e-5)


def test_shapes_and_dtypes(ci_config):
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=0))
  num_sources = len(ci_config.data.sources)
  masks = jnp.stack([batch['select'], batch_spec.complement(batch['presence'], batch['select'])], axis=1)
  out = model(batch['mixture'], masks, gumbel=model.training_noise(jax.random.key(0), batch['mixture'].shape),
              tau=1.0)
  frames = ci_config.data.segment_length // int(np.prod(ci_config.model.strides))
  q = ci_config.quantizer
  assert out.audio.shape == (2, 2, ci_config.data.segment_length, ci_config.data.channels)
  assert out.audio.dtype == jnp.float32
  assert out.quantized.codes.shape == (2, frames, num_sources, q.num_codebooks)
  assert out.quantized.codes.dtype == jnp.int32
  assert out.quantized.vectors.shape == (2, frames, num_sources, q.num_codebooks * q.code_dim)
  assert out.quantized.perplexity.shape == (num_sources, q.num_codebooks)
  codes = np.asarray(out.quantized.codes)
  assert codes.min() >= 0 and codes.max() < q.codebook_size
  logits = model.encoder(batch['mixture'])
  assert logits.shape == (2, frames, num_sources, q.num_codebooks, q.codebook_size)


def test_masked_out_source_codes_do_not_affect_selective_output(ci_config):
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=1))
  codes = model.encode(batch['mixture']).codes
  masks = jnp.array([[[1., 0., 1., 0.]]] * 2)  # bass and other unselected
  edited = codes.at[:, :, 1].set((codes[:, :, 1] + 3) % ci_config.quantizer.codebook_size)
  edited = edited.at[:, :, 3].set(0)
  np.testing.assert_array_equal(model.decode_codes(codes, masks), model.decode_codes(edited, masks))
  # ...while a selected source's codes do.
  changed = codes.at[:, :, 0].set((codes[:, :, 0] + 1) % ci_config.quantizer.codebook_size)
  assert not np.allclose(model.decode_codes(codes, masks), model.decode_codes(changed, masks))


def test_decode_codes_equals_inference_path(ci_config):
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=2))
  masks = jnp.ones((2, 1, len(ci_config.data.sources)))
  out = model(batch['mixture'], masks)  # no noise key: inference
  np.testing.assert_allclose(model.decode_codes(out.quantized.codes, masks), out.audio, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('decoder_input', ['concat', 'sum'])
def test_decode_equals_the_decoder_on_the_masked_slots(ci_config, decoder_input):
  """decode's projection trick equals the plain definition: the first decoder layer applied to the masked slots'
  concatenation ('concat') or sum ('sum'); and only 'sum' is blind to which slot holds which source."""
  ci_config.model.decoder_input = decoder_input
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  model.decoder.from_slots.bias[...] = jax.random.normal(jax.random.key(4), model.decoder.from_slots.bias.shape)
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=3))
  vectors = model.encode(batch['mixture']).vectors
  masks = jnp.array([[[1., 0., 1., 1.], [0., 1., 0., 0.]], [[1., 1., 1., 1.], [0., 0., 1., 0.]]])
  audio = model.decode(vectors, masks)
  assert audio.shape == (2, 2, ci_config.data.segment_length, ci_config.data.channels)
  for m in range(masks.shape[1]):
    masked = vectors * masks[:, m, None, :, None]
    slots = masked.reshape(*masked.shape[:2], -1) if decoder_input == 'concat' else masked.sum(axis=2)
    np.testing.assert_allclose(audio[:, m], model.decoder(slots), rtol=1e-5, atol=1e-6)
  swapped = model.decode(vectors[:, :, ::-1], jnp.ones((2, 1, 4)))
  same = np.allclose(swapped, model.decode(vectors, jnp.ones((2, 1, 4))), rtol=1e-5, atol=1e-6)
  assert same == (decoder_input == 'sum')


@pytest.mark.parametrize('kind', ['gumbel', 'fsq'])
def test_native_and_matmul_forms_give_one_model(ci_config, kind):
  """model.conv_impl changes how the layers compute, not what: same params layout (a checkpoint of one runs with
  the other), the same codes and audio, and the same loss gradients, to float tolerance."""
  ci_config.model.residual_units = 1
  if kind == 'fsq':
    ci_config.quantizer.kind, ci_config.quantizer.fsq_levels = 'fsq', (5, 3)
    ci_config.quantizer.code_dim, ci_config.quantizer.codebook_size = 2, 15
  ci_config.model.conv_impl = 'native'
  native = models.create(ci_config, seed=0)
  ci_config.model.conv_impl = 'matmul'
  matmul = models.create(ci_config, seed=0)
  assert native.encoder.convs[0].forms == layers.NATIVE and matmul.encoder.convs[0].forms == layers.MATMUL
  graphdef, params = models.split_params(native)
  matmul_graphdef, matmul_params = models.split_params(matmul)
  assert jax.tree.structure(params) == jax.tree.structure(matmul_params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(matmul_params)):
    np.testing.assert_array_equal(a, b)
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=4))
  masks = jnp.ones((2, 1, 4))
  noise = native.training_noise(jax.random.key(5), batch['mixture'].shape)

  def loss(p, g):
    out = nnx.merge(g, p)(batch['mixture'], masks, gumbel=noise, tau=0.8)
    return jnp.mean(jnp.abs(out.audio[:, 0] - batch['mixture'])), out

  (native_loss, native_out), native_grads = jax.value_and_grad(loss, has_aux=True)(params, graphdef)
  (matmul_loss, matmul_out), matmul_grads = jax.value_and_grad(loss, has_aux=True)(params, matmul_graphdef)
  np.testing.assert_array_equal(native_out.quantized.codes, matmul_out.quantized.codes)
  np.testing.assert_allclose(native_out.audio, matmul_out.audio, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(native_loss, matmul_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(native_grads), jax.tree.leaves(matmul_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  inference = [model.encode(batch['mixture']).codes for model in (native, matmul)]
  np.testing.assert_array_equal(*inference)


def test_conv_impl_auto_picks_matmul_on_cpu_native_elsewhere():
  assert layers.forms_for('auto', 'cpu') == layers.MATMUL
  assert layers.forms_for('auto', 'gpu') == layers.NATIVE and layers.forms_for('auto', 'tpu') == layers.NATIVE
  assert layers.forms_for('native', 'cpu') == layers.NATIVE and layers.forms_for('matmul', 'tpu') == layers.MATMUL
  with pytest.raises(ValueError, match='conv_impl'):
    layers.forms_for('cudnn')
  with pytest.raises(ValueError, match='LayerForms.strided'):
    layers.LayerForms(strided='diagonal')


def test_without_weight_gradients_only_the_kernel_gradients_vanish():
  """The benchmark ablation's forms: same values and input gradients, zero kernel gradients."""
  x = jax.random.normal(jax.random.key(0), (2, 16, 4))
  grads = {}
  for forms in (layers.MATMUL, layers.LayerForms(weight_gradients=False)):
    conv = layers.StridedConv(4, 6, 2, forms=forms, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(conv)
    grads[forms.weight_gradients] = jax.grad(lambda p, x: jnp.sum(jnp.sin(nnx.merge(graphdef, p)(x))),
                                             argnums=(0, 1))(params, x)
  (params_grad, x_grad), (ablated_params_grad, ablated_x_grad) = grads[True], grads[False]
  np.testing.assert_allclose(ablated_x_grad, x_grad, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(params_grad['kernel'][...]).max()) > 0
  np.testing.assert_array_equal(ablated_params_grad['kernel'][...], 0)


def test_bfloat16_compute_keeps_float32_params(ci_config):
  ci_config.model.dtype = 'bfloat16'
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  out = model(jnp.ones((1, ci_config.data.segment_length, 2)) * 0.1, jnp.ones((1, 1, 4)))
  assert out.audio.dtype == jnp.float32 and np.isfinite(np.asarray(out.audio)).all()


@pytest.mark.parametrize('forms', [layers.MATMUL, layers.NATIVE], ids=['matmul', 'native'])
@pytest.mark.parametrize('kernel_size,dilation,cin,cout', [(3, 1, 4, 4), (3, 3, 2, 5), (5, 9, 3, 3)])
def test_dilated_conv_equals_direct_convolution(kernel_size, dilation, cin, cout, forms):
  conv = layers.DilatedConv(cin, cout, kernel_size, dilation, forms=forms, rngs=nnx.Rngs(0))
  conv.bias[...] = jax.random.normal(jax.random.key(1), (cout,))
  x = jax.random.normal(jax.random.key(2), (2, 40, cin))
  pad = dilation * (kernel_size - 1) // 2
  reference = jax.lax.conv_general_dilated(x, conv.kernel[...], window_strides=(1,), padding=[(pad, pad)],
                                           rhs_dilation=(dilation,),
                                           dimension_numbers=('NWC', 'WIO', 'NWC')) + conv.bias[...]
  np.testing.assert_allclose(conv(x), reference, rtol=1e-5, atol=1e-5)


def test_residual_unit_starts_as_the_identity_and_learns():
  unit = layers.ResidualUnit(6, 3, 3, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(3), (2, 20, 6))
  np.testing.assert_array_equal(unit(x), x)
  graphdef, params = nnx.split(unit)
  grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x) ** 3))(params)
  assert float(jnp.abs(grads['out']['kernel'][...]).max()) > 0  # the zero-initialized layer gets a gradient
  assert np.isfinite(np.asarray(grads['conv']['kernel'][...])).all()


@pytest.mark.parametrize('kind', ['gumbel', 'fsq'])
def test_residual_and_fsq_models_decode_their_codes(ci_config, kind):
  ci_config.model.residual_units = 2
  if kind == 'fsq':
    ci_config.quantizer.kind = 'fsq'
    ci_config.quantizer.fsq_levels = (5, 3)
    ci_config.quantizer.code_dim, ci_config.quantizer.codebook_size = 2, 15
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=2))
  masks = jnp.ones((2, 1, 4))
  out = model(batch['mixture'], masks, gumbel=model.training_noise(jax.random.key(0), batch['mixture'].shape))
  assert out.audio.shape == (2, 1, ci_config.data.segment_length, 2)
  frames = ci_config.data.segment_length // 16
  assert out.quantized.codes.shape == (2, frames, 4, ci_config.quantizer.num_codebooks)
  inference_out = model(batch['mixture'], masks)
  np.testing.assert_allclose(model.decode_codes(inference_out.quantized.codes, masks), inference_out.audio,
                             rtol=1e-5, atol=1e-6)
  assert len(model.encoder.residuals[0]) == 2 and len(model.decoder.residuals[-1]) == 2


def test_codes_per_source_leaves_unused_codes_empty(ci_config):
  """quantizer.codes_per_source: a source's unused positions are code 0 with zero vectors, carry no gradient to
  the decoder, and the params layout is the one of the uniform model (same shapes)."""
  q = ci_config.quantizer
  q.kind, q.fsq_levels, q.code_dim, q.codebook_size = 'fsq', (5, 3), 2, 15
  uniform = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  q.codes_per_source = (2, 1, 2, 2)
  config_lib.validate(ci_config)
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  shapes = lambda m: jax.tree.map(jnp.shape, nnx.state(m, nnx.Param))
  assert shapes(model) == shapes(uniform)
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=2))
  quantized = model.encode(batch['mixture'])
  codes = np.asarray(quantized.codes)
  assert (codes[:, :, 1, 1] == 0).all() and (codes[:, :, 0, 1] != 0).any()
  vectors = np.asarray(quantized.vectors).reshape(*codes.shape, 2)
  assert (vectors[:, :, 1, 1] == 0).all()
  np.testing.assert_allclose(vectors[:, :, 1, 0], fsq.values_of(codes[:, :, 1, 0], (5, 3)), atol=1e-6)
  # Whatever integer sits in an unused position, it decodes the same (a stray code cannot add a sound).
  masks = jnp.ones((2, 1, 4))
  stray = codes.copy()
  stray[:, :, 1, 1] = 7
  np.testing.assert_array_equal(model.decode_codes(jnp.asarray(stray), masks), model.decode_codes(codes, masks))
  np.testing.assert_allclose(model.decode_codes(quantized.codes, masks), model.decode(quantized.vectors, masks),
                             rtol=1e-5, atol=1e-6)
  # The encoder outputs of an unused position get no gradient.
  def loss(m):
    return jnp.sum((m(batch['mixture'], masks).audio[:, 0] - batch['mixture']) ** 2)
  grads = nnx.grad(loss)(model)
  kernel = np.asarray(grads.encoder.to_logits.kernel[...]).reshape(-1, 4, 2, 2)  # [in, S, H, d]
  assert (kernel[:, 1, 1] == 0).all() and (np.abs(kernel[:, 1, 0]) > 0).any()


@pytest.mark.parametrize('counts,message', [
    ((2, 1, 2), 'one count per source'), ((3, 1, 2, 2), 'in 1..num_codebooks'), ((1, 1, 1, 1), 'the largest')])
def test_codes_per_source_is_checked(ci_config, counts, message):
  q = ci_config.quantizer
  q.codes_per_source = counts
  with pytest.raises(errors.ConfigError, match='needs quantizer.kind=fsq'):
    config_lib.validate(ci_config)
  q.kind, q.fsq_levels, q.code_dim, q.codebook_size = 'fsq', (5, 3), 2, 15
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.validate(ci_config)


@pytest.mark.parametrize('hard', [False, True])
def test_quantizer_hard_switches_the_models_training_vectors_to_one_entry(ci_config, hard):
  """quantizer.hard reaches the model: with it, a training pass's slot vectors are the codebook entries of
  argmax(logits + noise) (straight-through); without, soft mixtures that no entry equals."""
  ci_config.quantizer.hard = hard
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=5))
  noise = model.training_noise(jax.random.key(6), batch['mixture'].shape)
  quantized = model.encode(batch['mixture'], gumbel=noise, tau=1.0)
  noisy_codes = jnp.argmax(model.encoder(batch['mixture']) + noise, axis=-1)
  entries = model.lookup(noisy_codes)
  assert np.allclose(quantized.vectors, entries, atol=1e-6) == hard


def _numpy_lstm(x, w_in, w_rec, bias):
  """One direction of an LSTM over x [B, T, W], frame by frame (gates i, f, g, o)."""
  sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  batch, frames, _ = x.shape
  hidden = w_rec.shape[0]
  h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
  out = np.zeros((batch, frames, hidden))
  for t in range(frames):
    i, f, g, o = np.split(x[:, t] @ w_in + h @ w_rec + bias, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    out[:, t] = h
  return out


def test_bilstm_equals_two_lstms_frame_by_frame():
  width, hidden = 6, 5
  lstm = layers.BiLSTM(width, hidden, rngs=nnx.Rngs(params=0))
  lstm.out.kernel[...] = jax.random.normal(jax.random.key(1), lstm.out.kernel[...].shape)
  x = np.asarray(jax.random.normal(jax.random.key(2), (3, 11, width)), np.float64)
  w_in = np.asarray(lstm.input_kernel[...]).reshape(width, 2, 4 * hidden)
  w_rec, bias = np.asarray(lstm.recurrent_kernel[...]), np.asarray(lstm.bias[...]).reshape(2, 4 * hidden)
  forward = _numpy_lstm(x, w_in[:, 0], w_rec[0], bias[0])
  backward = _numpy_lstm(x[:, ::-1], w_in[:, 1], w_rec[1], bias[1])[:, ::-1]
  expected = x + np.concatenate([forward, backward], -1) @ np.asarray(lstm.out.kernel[...])
  np.testing.assert_allclose(np.asarray(lstm(jnp.asarray(x, jnp.float32))), expected, atol=1e-5)


def test_bilstm_starts_as_the_identity_and_every_param_gets_a_gradient():
  lstm = layers.BiLSTM(8, 4, rngs=nnx.Rngs(params=0))
  x = jax.random.normal(jax.random.key(0), (2, 16, 8))
  np.testing.assert_array_equal(np.asarray(lstm(x)), np.asarray(x))
  lstm.out.kernel[...] = 0.1 * jnp.ones_like(lstm.out.kernel[...])  # open the output, as one optimizer step would
  grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(lstm)
  for path, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads, nnx.Param)):
    assert np.all(np.isfinite(np.asarray(g))), path
    assert np.any(np.asarray(g) != 0), path


def test_bilstm_sees_the_whole_sequence_both_ways():
  lstm = layers.BiLSTM(4, 3, rngs=nnx.Rngs(params=0))
  lstm.out.kernel[...] = jnp.ones_like(lstm.out.kernel[...])
  x = jax.random.normal(jax.random.key(0), (1, 20, 4))
  changed = x.at[:, 10].add(1.0)
  diff = np.abs(np.asarray(lstm(changed) - lstm(x)))[0].sum(-1)
  assert diff[0] > 0 and diff[-1] > 0  # frame 10 reaches the first frame (backward) and the last (forward)


@pytest.mark.parametrize('where', ['encoder', 'decoder'])
def test_lstm_models_decode_their_codes_and_are_deterministic(ci_config, where):
  ci_config.model[f'{where}_lstm_layers'] = 1
  model, again = models.create(ci_config, seed=3), models.create(ci_config, seed=3)
  (lstm,) = getattr(model, where).lstms
  lstm.out.kernel[...] = 0.1 * jnp.ones_like(lstm.out.kernel[...])  # not the identity it starts as
  (lstm,) = getattr(again, where).lstms
  lstm.out.kernel[...] = 0.1 * jnp.ones_like(lstm.out.kernel[...])
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=0))
  masks = jnp.eye(len(ci_config.data.sources))[None].repeat(2, 0)
  out = model(batch['mixture'], masks)
  np.testing.assert_array_equal(np.asarray(out.audio), np.asarray(again(batch['mixture'], masks).audio))
  np.testing.assert_allclose(np.asarray(model.decode_codes(out.quantized.codes, masks)), np.asarray(out.audio),
                             rtol=1e-5, atol=1e-6)
  # Windowed inference gives an LSTM lstm_context_frames frames of context beyond the convolutions' reach.
  ci_config.model[f'{where}_lstm_layers'] = 0
  plain_margin = models.receptive_margin(ci_config)
  ci_config.model[f'{where}_lstm_layers'] = 1
  assert models.receptive_margin(ci_config) >= plain_margin + ci_config.model.lstm_context_frames * int(
      np.prod(ci_config.model.strides))


def test_source_masks_split_the_latent_and_each_share_makes_its_sources_codes():
  heads = layers.SourceMasks(6, 4, 10, rngs=nnx.Rngs(params=0))
  x = jax.random.normal(jax.random.key(0), (2, 5, 6))
  np.testing.assert_allclose(np.asarray(heads.masks(x).sum(axis=-2)), 1.0, rtol=1e-6)
  shares = np.asarray(heads.masks(x) * x[..., None, :])
  kernel, bias = np.asarray(heads.kernel[...]), np.asarray(heads.bias[...])
  expected = np.stack([shares[:, :, s] @ kernel[s] + bias[s] for s in range(4)], axis=2)
  np.testing.assert_allclose(np.asarray(heads(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kind', ['gumbel', 'fsq'])
def test_source_mask_models_train_and_decode_their_codes(ci_config, kind):
  if kind == 'fsq':
    ci_config.quantizer.kind = 'fsq'
    ci_config.quantizer.fsq_levels = (5, 3)
    ci_config.quantizer.code_dim, ci_config.quantizer.codebook_size = 2, 15
  ci_config.model.source_masks = True
  model = models.create(ci_config, seed=0)
  assert not hasattr(model.encoder, 'to_logits')
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=0))
  masks = jnp.stack([batch['select'], batch_spec.complement(batch['presence'], batch['select'])], axis=1)
  out = model(batch['mixture'], masks)
  np.testing.assert_allclose(np.asarray(model.decode_codes(out.quantized.codes, masks)), np.asarray(out.audio),
                             rtol=1e-5, atol=1e-6)
  noise = model.training_noise(jax.random.key(0), batch['mixture'].shape)
  targets = jnp.einsum('bstc,bms->bmtc', batch['sources'], masks)
  grads = nnx.grad(lambda m: jnp.mean((m(batch['mixture'], masks, gumbel=noise).audio - targets) ** 2))(model)
  for path, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads.encoder.source_masks, nnx.Param)):
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0), path


def test_spectral_features_are_log_magnitudes_of_centred_frames_one_per_latent_frame():
  rng = np.random.default_rng(0)
  audio = rng.normal(size=(2, 256, 3)).astype(np.float32)
  features = np.asarray(vqvae.spectral_features(jnp.asarray(audio), 64, 16))
  assert features.shape == (2, 16, 3 * 33)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
  padded = np.pad(audio, ((0, 0), (32, 32), (0, 0)))
  for t in (0, 5, 15):  # frame t is centred on sample 16 t
    expected = np.log1p(np.abs(np.fft.rfft(padded[1, 16 * t:16 * t + 64].T * window, axis=-1)))  # [C, bins]
    np.testing.assert_allclose(features[1, t], expected.reshape(-1), rtol=1e-4, atol=1e-4)


def test_spectral_input_models_train_and_decode_their_codes_and_others_keep_their_params(ci_config):
  plain = nnx.state(models.VQVAE(ci_config, rngs=nnx.Rngs(0)), nnx.Param)
  ci_config.model.spectral_input_fft = 64
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  spectral_params = nnx.state(model, nnx.Param)
  assert 'from_spectrum' not in plain['encoder'] and 'from_spectrum' in spectral_params['encoder']
  width = ci_config.model.channels[-1]
  assert model.encoder.from_spectrum.kernel.shape == (ci_config.data.channels * 33, width)
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=0))
  masks = jnp.stack([batch['select'], batch_spec.complement(batch['presence'], batch['select'])], axis=1)
  out = model(batch['mixture'], masks)
  np.testing.assert_allclose(np.asarray(model.decode_codes(out.quantized.codes, masks)), np.asarray(out.audio),
                             rtol=1e-5, atol=1e-6)
  again = models.VQVAE(ci_config, rngs=nnx.Rngs(0))(batch['mixture'], masks)
  np.testing.assert_array_equal(np.asarray(again.audio), np.asarray(out.audio))  # deterministic for a seed
  noise = model.training_noise(jax.random.key(0), batch['mixture'].shape)
  targets = jnp.einsum('bstc,bms->bmtc', batch['sources'], masks)
  grads = nnx.grad(lambda m: jnp.mean((m(batch['mixture'], masks, gumbel=noise).audio - targets) ** 2))(model)
  for path, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads.encoder.from_spectrum, nnx.Param)):
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0), path
  # The windowed path's margin covers half the window on each side.
  ci_config.model.spectral_input_fft = 0
  plain_margin = models.receptive_margin(ci_config)
  ci_config.model.spectral_input_fft = 512
  assert models.receptive_margin(ci_config) >= plain_margin + 256


def test_snake_is_x_plus_sin_squared_and_learns_its_alpha():
  snake = layers.Snake(3)
  x = jnp.linspace(-4.0, 4.0, 24).reshape(2, 4, 3)
  np.testing.assert_allclose(snake(x), x + np.sin(np.asarray(x)) ** 2, rtol=1e-6, atol=1e-6)  # alpha starts at 1
  snake.alpha[...] = jnp.array([0.5, 1.0, 2.0])
  alpha = np.array([0.5, 1.0, 2.0])
  np.testing.assert_allclose(snake(x), x + np.sin(alpha * np.asarray(x)) ** 2 / alpha, rtol=1e-5, atol=1e-6)
  graphdef, params = nnx.split(snake)
  grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x) ** 2))(params)
  assert np.all(np.isfinite(np.asarray(grads['alpha'][...]))) and np.all(np.asarray(grads['alpha'][...]) != 0)
  with pytest.raises(ValueError, match="model.activation='relu'"):
    layers.activation('relu', 3)


def test_snake_models_add_one_alpha_per_activation_channel_and_gelu_models_keep_their_params(ci_config):
  # (That GELU models keep the params of checkpoints written before activations were modules is checked against a
  # fixture: tests/export_test.py.)
  assert layers.ACTIVATIONS == config_lib.ACTIVATIONS
  ci_config.model.residual_units = 1
  gelu_params = nnx.state(models.VQVAE(ci_config, rngs=nnx.Rngs(0)), nnx.Param)
  ci_config.model.activation = 'snake'
  config_lib.validate(ci_config)
  model = models.VQVAE(ci_config, rngs=nnx.Rngs(0))
  snake_params = nnx.state(model, nnx.Param)
  paths = lambda state: {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)}
  added = paths(snake_params) - paths(gelu_params)
  assert paths(gelu_params) <= paths(snake_params) and added and all('alpha' in p for p in added)
  assert not any('alpha' in p for p in paths(gelu_params))
  channels = list(ci_config.model.channels)
  # Encoder: one per block and two per residual unit; decoder: one per block but the output's, two per unit.
  widths = channels + 2 * channels + channels[::-1][1:] + 2 * channels
  assert sorted(int(v.shape[0]) for p, v in jax.tree_util.tree_leaves_with_path(snake_params)
                if 'alpha' in jax.tree_util.keystr(p)) == sorted(widths)
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=2))
  masks = jnp.ones((2, 1, 4))
  out = model(batch['mixture'], masks)
  np.testing.assert_allclose(model.decode_codes(out.quantized.codes, masks), out.audio, rtol=1e-5, atol=1e-6)
  noise = model.training_noise(jax.random.key(0), batch['mixture'].shape)
  grads = nnx.grad(lambda m: jnp.mean((m(batch['mixture'], masks, gumbel=noise).audio
                                       - batch['mixture'][:, None]) ** 2))(model)
  alphas = [g for p, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads, nnx.Param))
            if 'alpha' in jax.tree_util.keystr(p)]
  assert all(np.all(np.isfinite(np.asarray(g))) for g in alphas) and any(np.any(np.asarray(g) != 0) for g in alphas)
  ci_config.model.activation = 'relu'
  with pytest.raises(errors.ConfigError, match="model.activation='relu'"):
    config_lib.validate(ci_config)
