"""The from-scratch LSTM against torch.nn.LSTM and Keras's LSTM; the model registry; parameter parity."""

import numpy as np
import pytest
import torch

from signrec.batching import last_valid, left_align, mix, pad
from signrec.models import build_model, keep_classes, known_models, make_config
from signrec.models.keras_lstm import build_keras_model, import_keras
from signrec.models.lstm import LSTMClassifier, LSTMConfig, ScratchLSTM

REFERENCE_PARAMETERS = 596_708  # 4 glosses, 1662 features


def _inputs(batch=3, steps=7, features=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, features, generator=g)


def test_forward_and_gradients_match_torch_nn_lstm():
    torch.manual_seed(0)
    ours = ScratchLSTM(5, 4, "tanh")
    with torch.no_grad():
        ours.bias.uniform_(-0.5, 0.5)
    ref = torch.nn.LSTM(5, 4, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.weight_ih)
        ref.weight_hh_l0.copy_(ours.weight_hh)
        ref.bias_ih_l0.copy_(ours.bias)
        ref.bias_hh_l0.zero_()
    x1 = _inputs().requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(3, 7, 4)
    y1, (y2, _) = ours(x1), ref(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-6)
    (y1 * w).sum().backward()
    (y2 * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.weight_ih.grad, ref.weight_ih_l0.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.weight_hh.grad, ref.weight_hh_l0.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.bias.grad, ref.bias_ih_l0.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_forward_and_gradients_match_keras_lstm(activation):
    keras = import_keras()
    import jax
    import jax.numpy as jnp

    torch.manual_seed(1)
    ours = ScratchLSTM(5, 4, activation)
    with torch.no_grad():
        ours.bias.uniform_(-0.5, 0.5)
    layer = keras.layers.LSTM(4, activation=activation, return_sequences=True)
    layer.build((None, 7, 5))
    layer.set_weights([ours.weight_ih.detach().numpy().T, ours.weight_hh.detach().numpy().T, ours.bias.detach().numpy()])
    x = _inputs()
    w = torch.randn(3, 7, 4)
    np.testing.assert_allclose(np.asarray(layer(x.numpy())), ours(x).detach().numpy(), rtol=1e-5, atol=1e-6)

    fixed = [jnp.asarray(v.value) for v in layer.non_trainable_variables]

    def loss(variables, inputs):
        y, _ = layer.stateless_call(variables, fixed, inputs)
        return (y * jnp.asarray(w.numpy())).sum()

    variables = [jnp.asarray(v.value) for v in layer.trainable_variables]
    g_vars, g_x = jax.grad(loss, argnums=(0, 1))(variables, jnp.asarray(x.numpy()))
    xt = x.clone().requires_grad_(True)
    (ours(xt) * w).sum().backward()
    np.testing.assert_allclose(np.asarray(g_x), xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    for got, ref in zip([ours.weight_ih.grad.T, ours.weight_hh.grad.T, ours.bias.grad], g_vars):
        np.testing.assert_allclose(got.numpy(), np.asarray(ref), rtol=1e-4, atol=1e-6)


def test_parameter_count_matches_keras_exactly():
    config = LSTMConfig(num_classes=4)
    torch_model = LSTMClassifier(config)
    assert sum(p.numel() for p in torch_model.parameters()) == REFERENCE_PARAMETERS
    assert build_keras_model(config, max_frames=30).count_params() == REFERENCE_PARAMETERS


def test_no_builtin_lstm_inside():
    model = LSTMClassifier(LSTMConfig(num_classes=4))
    assert not any(isinstance(m, (torch.nn.LSTM, torch.nn.LSTMCell, torch.nn.RNNBase)) for m in model.modules())


def test_xavier_uniform_bounds():
    layer = ScratchLSTM(1662, 64)
    bound = np.sqrt(6 / (1662 + 4 * 64))
    assert layer.weight_ih.abs().max() <= bound
    assert layer.weight_ih.abs().max() > 0.9 * bound  # really uniform over the whole range


def _batch(clips, side="post", total=None):
    x, mask = pad([c.numpy() for c in clips], side, total)
    return torch.from_numpy(x), torch.from_numpy(mask)


@pytest.mark.parametrize("name", known_models(composed=True))
def test_every_model_gives_the_same_logits_padded_pre_post_or_alone(name):
    """Issue 11.1: pre-padding used to shift every model onto the wrong frames (this failed on the old main)."""
    torch.manual_seed(0)
    model = build_model(name, make_config(name, num_classes=4, input_size=6)).eval()
    clips = [torch.randn(n, 6) for n in (5, 9, 3, 9)]
    with torch.no_grad():
        alone = torch.cat([model(c[None], torch.ones(1, len(c), dtype=torch.bool)) for c in clips])
        for side in ("post", "pre"):
            for total in (None, 12):
                torch.testing.assert_close(model(*_batch(clips, side, total)), alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(clips[1][None]), alone[1:2], rtol=1e-5, atol=1e-5)  # no mask: all real


@pytest.mark.parametrize("name", known_models())
def test_a_model_kept_to_some_classes_gives_their_renormalised_probabilities(name):
    """A model trained on 300 glosses answering among WLASL100's 100: its probabilities are the full model's for
    those classes, renormalised, in the order asked for."""
    torch.manual_seed(0)
    config = make_config(name, num_classes=6, input_size=5)
    model = build_model(name, config).eval()
    keep = [4, 0, 2]
    kept, kept_config = keep_classes(model, name, config, keep)
    assert kept_config.num_classes == 3 and config.num_classes == 6
    x, mask = _batch([torch.randn(7, 5), torch.randn(4, 5)])
    with torch.no_grad():
        full = torch.softmax(model(x, mask), -1)[:, keep]
        torch.testing.assert_close(torch.softmax(kept(x, mask), -1), full / full.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="distinct classes"):
        keep_classes(model, name, config, [0, 0])
    with pytest.raises(ValueError, match="fewer classes"):  # a reordering of all six is not a smaller model
        keep_classes(model, name, config, [5, 4, 3, 2, 1, 0])


def test_the_seed_way_reads_the_final_padded_step():
    torch.manual_seed(0)
    model = LSTMClassifier(LSTMConfig(num_classes=3, input_size=6)).eval()
    a, b = torch.randn(5, 6), torch.randn(9, 6)
    final = LSTMClassifier(LSTMConfig(num_classes=3, input_size=6, read="final")).eval()
    final.load_state_dict(model.state_dict())
    with torch.no_grad():
        alone = model(a[None])
        torch.testing.assert_close(final(a[None]), alone)  # unpadded, both read the same step
        assert not torch.allclose(final(*_batch([a, b]))[0], alone[0], atol=1e-4)  # padded: the seed's way differs


def test_pad_pre_and_post_and_left_align():
    a, b = torch.ones(2, 3), 2 * torch.ones(4, 3)
    post, mask = _batch([a, b])
    assert mask.sum(1).tolist() == [2, 4]
    assert post[:, :, 0].tolist() == [[1, 1, 0, 0], [2, 2, 2, 2]]
    pre, pre_mask = _batch([a, b], "pre", total=5)
    assert pre[:, :, 0].tolist() == [[0, 0, 0, 1, 1], [0, 2, 2, 2, 2]]
    assert pre_mask.tolist() == [[False, False, False, True, True], [False, True, True, True, True]]
    aligned, lengths = left_align(pre, pre_mask)
    assert aligned[:, :, 0].tolist() == [[1, 1, 0, 0, 0], [2, 2, 2, 2, 0]] and lengths.tolist() == [2, 4]
    out = torch.arange(10.0).view(2, 5, 1)
    assert last_valid(out, torch.tensor([2, 5])).flatten().tolist() == [1.0, 9.0]
    with pytest.raises(ValueError, match="does not fit a batch of 3 frames"):
        pad([np.zeros((4, 2))], "post", 3)
    with pytest.raises(ValueError, match="padding side must be"):
        pad([np.zeros((4, 2))], "middle")


def test_mixup_meets_two_clips_start_to_start_and_end_to_end():
    """Mixup of clips of different lengths: the partner's frames stretched or squeezed to each clip's own length
    (nearest frame), whichever side the padding is on; the result is post-padded with each clip's own mask."""
    a, b = torch.tensor([1.0, 2, 3, 4])[:, None], torch.tensor([10.0, 20])[:, None]
    for side in ("pre", "post"):
        x, mask = _batch([a, b], side, total=5)
        mixed, real = mix(x, mask, torch.tensor([1, 0]), 0.5)
        assert mixed[:, :, 0].tolist() == [[5.5, 6, 11.5, 12, 0], [5.5, 11.5, 0, 0, 0]]  # b as 10 10 20 20; a as 1 3
        assert real.tolist() == [[True] * 4 + [False], [True, True, False, False, False]]
        same, _ = mix(x, mask, torch.tensor([1, 0]), 1.0)
        torch.testing.assert_close(same, left_align(x, mask)[0])  # a weight of 1: the batch itself


def test_pad_matches_keras_pad_sequences():
    keras = import_keras()
    seqs = [np.random.default_rng(i).random((n, 4), dtype=np.float32) for i, n in enumerate([3, 6, 2])]
    for side in ("pre", "post"):
        ours, _ = pad(seqs, side)
        ref = keras.utils.pad_sequences(seqs, dtype="float32", padding=side)
        np.testing.assert_array_equal(ours, ref)


def test_registry_fails_loudly_on_unknown_names():
    assert "lstm" in known_models()
    with pytest.raises(KeyError, match="known models: .*lstm"):
        build_model("gpt", None)
    with pytest.raises(TypeError, match="no options"):
        make_config("lstm", num_classes=3, wings=2)


@pytest.mark.parametrize("name", known_models(composed=True))
def test_every_registered_model_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = build_model(name, make_config(name, num_classes=5, input_size=1662))
    x, mask = _batch([torch.randn(12, 1662), torch.randn(7, 1662)])
    logits = model(x, mask)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    # a training loss (an ensemble's logits are log-probabilities, so their logsumexp is 0 whatever the weights)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"


def test_the_command_line_offers_exactly_the_registered_models():
    from signrec.cli import MODELS

    assert sorted(MODELS) == known_models()


def test_our_encoder_layer_is_torchs_with_a_dynamic_time_axis():
    """Same function and parameter names as nn.TransformerEncoderLayer (so older checkpoints load)."""
    from torch import nn

    from signrec.models.convformer import EncoderLayer

    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 4, 32, 0.0, activation="gelu", batch_first=True, norm_first=True).eval()
    ours = EncoderLayer(16, 4, 32, 0.0).eval()
    ours.load_state_dict(ref.state_dict())
    x, mask = _batch([torch.randn(n, 16) for n in (7, 4)])
    with torch.no_grad():
        want = ref(x, src_key_padding_mask=~mask)
        got = ours(x, mask)
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-5, atol=1e-5)


def test_our_dropout_zeroes_a_share_p_and_scales_the_rest_in_training_only():
    from signrec.models.convformer import Dropout

    torch.manual_seed(0)
    x = torch.full((200, 500), 2.0)
    y = Dropout(0.3).train()(x)
    zeroed = y == 0
    assert abs(zeroed.float().mean().item() - 0.3) < 0.01
    torch.testing.assert_close(y[~zeroed], torch.full_like(y[~zeroed], 2.0 / 0.7))
    assert torch.equal(Dropout(0.3).eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout must be in"):
        Dropout(1.0)


def test_attention_dropout_in_training_averages_to_the_evaluation_output_and_never_sees_padding(monkeypatch):
    """The training path (attention weights dropped out) is the evaluation path's function, exactly without the
    dropout and in expectation with it; a padded frame's values must not reach the real frames in either."""
    from signrec.models import convformer
    from signrec.models.convformer import SelfAttention

    torch.manual_seed(0)
    attention = SelfAttention(8, 2, 0.5)
    x, mask = _batch([torch.randn(n, 8) for n in (6, 3)])
    x[1, 3:] = 100.0  # padding that would show if it were attended to
    with torch.no_grad():
        want = attention.eval()(x, mask)
        attention.train()
        draws = torch.stack([attention(x, mask) for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0)[mask], want[mask], rtol=0, atol=0.05)
    assert draws[:, mask].std(0).mean() > 0.1  # it did drop out
    monkeypatch.setattr(convformer, "dropout", lambda x, p: x)  # the same scale and mask as the fused kernel
    with torch.no_grad():
        torch.testing.assert_close(attention(x, mask)[mask], want[mask], rtol=1e-5, atol=1e-6)
