"""`continuo doctor` per platform and per install: what is missing, and the one command that fixes it there."""

from __future__ import annotations

import sys

import bridge.tools.doctor as doctor


def test_the_install_kind_is_read_from_the_installers_receipt(tmp_path):
    pipx, uv, venv = (tmp_path / name for name in ("pipx", "uv", "venv"))
    for folder in (pipx, uv, venv):
        folder.mkdir()
    (pipx / "pipx_metadata.json").write_text("{}")
    (uv / "uv-receipt.toml").write_text("[tool]\n")
    assert [doctor.install_kind(str(folder)) for folder in (pipx, uv, venv)] == ["pipx", "uv", "pip"]
    assert doctor.install_command("openvino", str(pipx)) == "pipx inject continuo 'openvino'"
    assert doctor.install_command("openvino", str(uv)) == "uv tool install --reinstall continuo --with 'openvino'"
    assert doctor.install_command("openvino", str(venv)) == f"{sys.executable} -m pip install 'openvino'"


def test_a_missing_package_line_names_the_fix_for_this_install():
    line = doctor.package_line("continuo_no_such_module", "a purpose")
    assert line.startswith("  [no ]") and f"fix: `{sys.executable} -m pip install 'continuo_no_such_module'`" in line


def test_nvidia_only_packages_ask_nothing_of_a_mac(monkeypatch):
    monkeypatch.setattr(doctor, "NVIDIA_ONLY", ("continuo_no_such_module",))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "nothing to install on a Mac" in doctor.package_line("continuo_no_such_module", "x")
    monkeypatch.setattr(sys, "platform", "linux")  # the control: on Linux it is a fix to run
    assert "fix: `" in doctor.package_line("continuo_no_such_module", "x")


def test_platform_lines_say_what_is_missing_or_that_nothing_is(monkeypatch):
    import inference.runtime.kernels as kernels

    monkeypatch.setattr(kernels, "missing_tools", lambda: None)
    lines = doctor.platform_lines()
    assert lines[0].startswith("  [yes] nothing missing on") and "clients (Max device" in lines[1]
    assert str(doctor.clients_dir()).endswith("clients")
    monkeypatch.setattr(kernels, "missing_tools", lambda: "no C++ compiler: run `xcode-select --install`")
    lines = doctor.platform_lines()
    assert lines[0] == "  [no ] C++ kernels: no C++ compiler: run `xcode-select --install`"
    assert not any("nothing missing" in line for line in lines)


def test_the_clients_are_found_where_the_wheel_puts_them(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "CHECKOUT", tmp_path / "not-a-checkout")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert doctor.clients_dir() is None
    device = tmp_path / "share/continuo/clients/max/Continuo.amxd"
    device.parent.mkdir(parents=True)
    device.write_bytes(b"ampf")
    assert doctor.clients_dir() == tmp_path / "share/continuo/clients"
