"""Calibration at load (inference/musicgen/calibration.py): equalisation keeps the fp32 function and flattens the
channels int8 would lose; the gate takes a lossy mode only within its budget, falls back otherwise, and says so."""

from __future__ import annotations

import json

import pytest
import torch

import inference.musicgen.calibration as calibration
from inference.loading import load_engine, resolve_model
from inference.musicgen.calibration import (
    Budget,
    CalibrationInputs,
    equalize_,
    forced_logits,
    recording,
)
from inference.musicgen.kv_cache import KVCacheMode
from inference.musicgen.model import ModelArgs, MusicGenDecoder, sinusoids


@pytest.fixture
def source(tiny_model_dir, tmp_path_factory, monkeypatch, tmp_path):
    """The smoke model, with no decision saved for it yet (each test measures)."""
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    return resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))


def outlier_decoder(gain: float) -> tuple[MusicGenDecoder, CalibrationInputs]:
    """A random decoder of head size 64 whose layer-0 K channel 3 is x gain (Q / gain: same function) and whose
    final LayerNorm channel 5 is x gain (heads' column / gain), with calibration rows for it. (What equalisation
    buys int8 is measured on the harness, where attention matters: tests/inference/bench/test_quality.py.)"""
    torch.manual_seed(0)
    args = ModelArgs(dim=128, n_layer=2, n_head=2, ffn_dim=128, vocab_size=64, text_dim=16, max_positions=128)
    decoder = MusicGenDecoder(args).eval()
    decoder.positions = sinusoids(args.max_positions, args.dim)
    with torch.no_grad():
        for module in decoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.bias.normal_(0, 0.1)
        wqkv = decoder.layers[0].attention.wqkv.weight
        wqkv[args.dim + 3] *= gain
        wqkv[3] /= gain
        decoder.norm.weight[5] *= gain
        decoder.norm.bias[5] *= gain
        for head in decoder.heads:
            head.weight[:, 5] /= gain
    inputs = CalibrationInputs(torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.long),
                               torch.randint(64, (1, 4, 24)))
    inputs.text_states[1] = 0  # the CFG null row
    inputs.text_mask[1] = 0
    return decoder, inputs


def test_equalisation_keeps_the_function_and_flattens_the_loud_channels():
    decoder, inputs = outlier_decoder(100.0)
    with recording(decoder) as stats:
        before = forced_logits(decoder, inputs, KVCacheMode.FP32)
    keys = stats.keys[0].view(2, 64)
    assert keys[0, 3] > 20 * keys[0].median()  # the control: the loud K channel is there to flatten
    equalize_(decoder, stats)
    after = forced_logits(decoder, inputs, KVCacheMode.FP32)
    assert ((after - before).norm() / before.norm()).item() < 1e-5
    with recording(decoder) as flat:
        forced_logits(decoder, inputs, KVCacheMode.FP32)
    keys = flat.keys[0].view(2, 64)
    assert keys.amax(dim=1).div(keys.amin(dim=1)).max() < 1.01  # every K channel of a head spans one range
    assert flat.norms["norm"].max() < 5 * flat.norms["norm"].median()


def test_auto_on_the_smoke_model_is_calibrated_and_recorded(source):
    engine = load_engine(source, device="cpu", warm_up=False)
    record = engine.info.modes["calibration"]
    assert record["gated"] and record["equalized"] and record["floor"]["steps"] > 0
    # int4 weights within the budget here, then int4 heads on top (the cheapest head), then the cache on both
    assert set(record["measured"]) == {"int4 weights", "int4 weights + int4 heads",
                                       "int4 weights + int4 heads + int8 cache"}
    assert engine.weights.value == "int4"
    assert engine.info.modes["weights"] == record["weights"] == engine.weights.value
    assert engine.info.modes["heads"] == record["heads"] == "int4" and "LM heads int4" in record["summary"]
    assert all(type(head).__name__ == "Int4Linear" for head in engine.decoder.heads)
    assert engine.decoder.fused_heads() is not None  # the four heads in one kernel call
    assert engine.info.modes["kv_cache"] == record["kv_cache"] == engine.kv_cache.value
    assert record["seconds"] < 5.0  # the smoke model pays little for it


def test_auto_falls_back_beyond_the_budget(source, monkeypatch):
    """A budget nothing meets: auto serves fp32 weights and an fp32 cache, and records why."""
    monkeypatch.setattr(calibration, "BUDGET", Budget(kl_factor=0.0, min_kl=0.0, min_agreement=1.01))
    engine = load_engine(source, device="cpu", warm_up=False)
    assert engine.weights.value == "fp32" and engine.kv_cache.value == "fp32"
    assert not any(type(module).__name__ == "Int8Linear" for module in engine.decoder.modules())
    decisions = engine.info.modes["calibration"]["decisions"]
    assert any("int4 weights beyond the budget" in line for line in decisions)
    assert any("int8 weights beyond the budget" in line for line in decisions)
    assert any("int8 cache beyond the budget" in line for line in decisions)


def test_auto_takes_int8_where_int4_is_beyond_the_budget(source, monkeypatch):
    """int4 is measured first; refused, int8 is measured next and served (the budget here refuses only the first
    weight mode it is asked about: int4)."""
    asked = []

    class RefusesInt4(Budget):
        def allows(self, fidelity, floor) -> bool:
            asked.append(fidelity)
            return len(asked) > 1

    monkeypatch.setattr(calibration, "BUDGET", RefusesInt4())
    engine = load_engine(source, device="cpu", warm_up=False)
    record = engine.info.modes["calibration"]
    assert engine.weights.value == "int8" and "int8 weights" in record["measured"]
    assert record["measured"]["int4 weights"]["kl"] >= 0
    assert "int8 weights + int4 heads + int8 cache" in record["measured"]  # the heads measured on int8 weights
    assert any("int4 weights beyond the budget" in line for line in record["decisions"])
    assert any(type(module).__name__ == "Int8Linear" for module in engine.decoder.layers.modules())
    assert not any(type(module).__name__ == "Int4Linear" for module in engine.decoder.layers.modules())


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_named_modes_are_equalised_but_not_gated(source, monkeypatch, weights):
    """Named weights keep bf16 LM heads (not measured: engine.resolve_heads says why), while auto on the same model
    quantizes them (test_auto_on_the_smoke_model_is_calibrated_and_recorded)."""
    monkeypatch.setattr(calibration, "BUDGET", Budget(kl_factor=0.0, min_kl=0.0, min_agreement=1.01))
    engine = load_engine(source, device="cpu", warm_up=False, weights=weights, kv_cache="int8")
    record = engine.info.modes["calibration"]
    assert engine.weights.value == weights and engine.kv_cache.value == "int8"
    assert record["equalized"] and not record["gated"] and not record["measured"]
    heads = {type(head).__name__ for head in engine.decoder.heads}
    assert not heads & {"Int8Linear", "Int4Linear"}  # the LM heads stay bf16 (or fp32 without oneDNN bf16)
    assert engine.info.modes["heads"] == record["heads"] == "bf16"


def test_exact_modes_skip_calibration(source):
    engine = load_engine(source, device="cpu", warm_up=False, weights="fp32", kv_cache="fp32")
    assert engine.info.modes["calibration"] is None


def test_a_decision_is_saved_per_checkpoint_and_reused(source, monkeypatch, tmp_path):
    """The second load takes the first one's decision without measuring: a budget nothing meets changes nothing
    then, while with no saved decision the same budget makes auto fall back (the control)."""
    first = load_engine(source, device="cpu", warm_up=False).info.modes
    assert not first["calibration"]["reused"] and len(list((tmp_path / "plans").glob("*.json"))) == 1
    monkeypatch.setattr(calibration, "BUDGET", Budget(kl_factor=0.0, min_kl=0.0, min_agreement=1.01))
    again = load_engine(source, device="cpu", warm_up=False).info.modes
    assert again["calibration"]["reused"]
    assert (again["weights"], again["kv_cache"]) == (first["weights"], first["kv_cache"])
    assert again["calibration"]["measured"] == first["calibration"]["measured"]
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "fresh"))
    fresh = load_engine(source, device="cpu", warm_up=False).info.modes
    assert (fresh["weights"], fresh["kv_cache"]) == ("fp32", "fp32")


def test_auto_keeps_bf16_heads_where_quantized_heads_are_beyond_the_budget(source, monkeypatch):
    """int4 weights taken, then int4 heads and int8 heads each refused (the budget refuses the second and third
    measurement: the two heads), so the heads stay bf16 and the cache is measured on int4 weights with them."""
    asked = []

    class RefusesHeads(Budget):
        def allows(self, fidelity, floor) -> bool:
            asked.append(fidelity)
            return len(asked) not in (2, 3)

    monkeypatch.setattr(calibration, "BUDGET", RefusesHeads())
    engine = load_engine(source, device="cpu", warm_up=False)
    record = engine.info.modes["calibration"]
    assert engine.weights.value == "int4" and engine.info.modes["heads"] == record["heads"] == "bf16"
    assert list(record["measured"]) == ["int4 weights", "int4 weights + int4 heads", "int4 weights + int8 heads",
                                        "int4 weights + int8 cache"]
    assert any("int4 heads beyond the budget" in line and "int8 heads measured next" in line
               for line in record["decisions"])
    assert any("int8 heads beyond the budget" in line and "bf16 heads kept" in line for line in record["decisions"])
    assert not {type(head).__name__ for head in engine.decoder.heads} & {"Int8Linear", "Int4Linear"}
    assert engine.decoder.fused_heads() is None


def test_auto_takes_int8_heads_where_int4_heads_are_refused(source, monkeypatch):
    asked = []

    class RefusesInt4Heads(Budget):
        def allows(self, fidelity, floor) -> bool:
            asked.append(fidelity)
            return len(asked) != 2

    monkeypatch.setattr(calibration, "BUDGET", RefusesInt4Heads())
    engine = load_engine(source, device="cpu", warm_up=False)
    assert engine.info.modes["heads"] == "int8" and engine.weights.value == "int4"
    assert "int4 weights + int8 heads + int8 cache" in engine.info.modes["calibration"]["measured"]
    assert all(type(head).__name__ == "Int8Linear" for head in engine.decoder.heads)


def test_the_heads_decision_is_saved_and_an_older_plan_keeps_bf16_heads(source, monkeypatch, tmp_path):
    """The saved plan carries the heads: a second load serves the same quantized heads without measuring; the same
    plan with its "heads" removed (as saved before heads were measured) serves bf16 heads."""
    first = load_engine(source, device="cpu", warm_up=False).info.modes
    assert first["heads"] == "int4"
    (path,) = (tmp_path / "plans").glob("*.json")
    assert json.loads(path.read_text())["decision"]["heads"] == "int4"
    again = load_engine(source, device="cpu", warm_up=False)
    assert again.info.modes["calibration"]["reused"] and again.info.modes["heads"] == "int4"
    assert all(type(head).__name__ == "Int4Linear" for head in again.decoder.heads)
    record = json.loads(path.read_text())
    del record["decision"]["heads"]
    path.write_text(json.dumps(record))
    old = load_engine(source, device="cpu", warm_up=False)
    assert old.info.modes["calibration"]["reused"] and old.info.modes["heads"] == "bf16"
    assert old.weights.value == first["weights"]
    assert not {type(head).__name__ for head in old.decoder.heads} & {"Int8Linear", "Int4Linear"}


def test_a_calibration_record_round_trips_its_heads():
    record = calibration.Calibration(weights="int4", kv_cache="int8", equalized=True, gated=True,
                                     heads="int8").as_dict()
    assert calibration.Calibration.from_dict(record).heads == "int8"
    assert calibration.Calibration.from_dict({**record, "heads": None}).heads == "bf16"
