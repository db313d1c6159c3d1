"""The commands as functions (lpq.relabel, lpq.train), with a teacher that is a model of one's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lpq
from lpq.errors import LpqError
from lpq.format import LpqlReader
from lpq.method.batches import StoredBatches
from lpq.models import build_model


def test_relabel_with_a_model_of_your_own_stores_its_logits_and_train_reads_them(tmp_path: Path) -> None:
    """The stored logits of a batch are the model's own output on that batch replayed (the reference: the module
    called here on the replayed, normalized inputs), and lpq.train trains on the file."""
    torch.manual_seed(0)
    net = build_model("convnet", 10, 16).eval()
    spec = lpq.InputSpec(size=16, mean=(0.4,) * 3, std=(0.3,) * 3)
    out = tmp_path / "own.lpql"
    result = lpq.relabel("digits", net, out, input_spec=spec, epochs=2, batch_size=64, values="f32", workers=0)
    assert result.batches_kept == result.batches_total == 2 * 23
    with LpqlReader(out) as r:
        assert r.header.teacher.architecture == "module:ConvNet" and r.header.augment.mean == (0.4,) * 3
        stored = r.read(5)
    batch = StoredBatches(out, lpq.open_images("digits"))[(0, 5)]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(stored.values), net(batch.inputs), atol=1e-4, rtol=1e-4)
    run = lpq.train("digits", out, tmp_path / "run", epochs=1, workers=0)
    assert run.epochs == 1 and (tmp_path / "run" / "result.json").exists()


def test_a_model_with_another_head_or_no_input_spec_is_refused(tmp_path: Path) -> None:
    spec = lpq.InputSpec(size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(LpqError, match="teacher-class-count"):
        lpq.relabel("digits", build_model("convnet", 7, 16), tmp_path / "a.lpql", input_spec=spec)
    with pytest.raises(LpqError, match="teacher-no-input-spec"):
        lpq.relabel("digits", build_model("convnet", 10, 16), tmp_path / "b.lpql")
    assert not list(tmp_path.iterdir())


def test_kd_loss_t2_and_the_default_ca_grid() -> None:
    """T^2 scaling by hand; the default grid is the authors' 0.01..1 in 100 points (its minimum on a target that is
    the student's own softmax at 0.5 is 0.5)."""
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.softmax(logits / 0.5, dim=1)
    plain = lpq.kd_loss(logits, torch.tensor([[0.7, 0.2, 0.1]]), 2.0)
    assert lpq.kd_loss(logits, torch.tensor([[0.7, 0.2, 0.1]]), 2.0, teacher_temp=4.0) == pytest.approx(16 * plain)
    assert lpq.fit_student_temperature(logits, target) == pytest.approx(0.5)


def test_the_default_k_is_ten_or_every_class_in_relabel_and_quantize_alike(tmp_path: Path) -> None:
    """Without --top-k, a code keeps 10 classes, or all of them where there are fewer: relabel refused a 4-class
    set ("--top-k 10 must be between 1 and the 4 classes", an option nobody gave) where quantize kept 4."""
    from PIL import Image

    for c in range(4):
        (tmp_path / "four" / "train" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            pixels = torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
            Image.fromarray(pixels.numpy()).save(tmp_path / "four" / "train" / f"c{c}" / f"{i}.png")
    net = build_model("convnet", 4, 8).eval()
    spec = lpq.InputSpec(size=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    full = tmp_path / "full.lpql"
    lpq.relabel(str(tmp_path / "four"), net, full, input_spec=spec, epochs=1, values="f32", workers=0)
    mr = tmp_path / "mr.lpql"
    lpq.relabel(str(tmp_path / "four"), net, mr, input_spec=spec, epochs=1, scheme="mr", workers=0)
    quantized = tmp_path / "q.lpql"
    lpq.quantize_file(lpq.QuantizeConfig(labels=full, output=quantized, scheme="mr"))
    for path in (mr, quantized):
        with LpqlReader(path) as r:
            assert (r.header.quant.scheme, r.header.quant.k) == ("mr", 4)
