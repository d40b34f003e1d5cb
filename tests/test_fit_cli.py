"""``aimcjax fit`` end to end on the embedded example: output files, a device loadable with
``--device @DIR/device.json``, one-line errors for bad traces."""

import json
import os

from aimcjax import devices
from aimcjax.app import cli, specs


def test_fit_command_on_the_embedded_example(tmp_path, capsys):
    out = tmp_path / "fit"
    assert (
        cli.main(
            [
                "fit",
                "example",
                "--families",
                "softbounds",
                "constant",
                "--noise",
                "additive",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "ranking by BIC" in printed and "±" in printed
    # The path it tells the user to pass exists (the run writes to DIR.partial first).
    told = printed.split("use --device @", 1)[1].split(")", 1)[0]
    assert told == str(out.resolve() / "device.json") and os.path.isfile(told)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["family"] for r in summary["ranking"]] == [
        "softbounds",
        "constant",
    ]  # the preset is soft-bounds
    assert (out / "fit_overlay.png").stat().st_size > 10_000
    dev = specs.parse(f"@{out / 'device.json'}")
    assert isinstance(dev, devices.SoftBounds) and dev.noise == "additive"
    assert dev.dw_min == summary["estimates"]["dw_min"]["value"]
    # The preset's step size (reram_sb: dw_min 2e-3) within 3 standard errors.
    est = summary["estimates"]["dw_min"]
    assert abs(est["value"] - 2e-3) < 3 * est["se"]


def test_fit_command_bad_traces_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("device,pulse,read\na,0,1\n")
    assert cli.main(["fit", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing column(s) direction" in err and "\n" not in err
