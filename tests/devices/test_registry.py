"""The device registry: names, listing, Android profiles, options."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from latkit.devices import registry
from latkit.devices.base import Device, ProtocolSettings
from latkit.devices.onnx_cpu import OnnxCpuDevice
from latkit.devices.registry import get_device, list_devices
from latkit.devices.tflite_cpu import LiteRtCpuDevice
from latkit.errors import DeviceError


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """An isolated profile folder with one Android profile, pixel4.yaml."""
    (tmp_path / "pixel4.yaml").write_text("description: Google Pixel 4 (Snapdragon 855)\nabi: arm64-v8a\n")
    from latkit.devices import paths

    monkeypatch.setattr(paths, "profiles_dir", lambda: tmp_path)
    monkeypatch.setenv("LATKIT_HOME", str(tmp_path / "home"))
    return tmp_path


def test_profiles_dir_is_inside_the_package():
    import latkit

    package = Path(latkit.__file__).parent
    assert registry.profiles_dir() == package / "data" / "devices"


def test_list_has_local_devices_with_fields():
    rows = {r["name"]: r for r in list_devices()}
    assert {"cpu", "cpu-tflite", "cuda"} <= set(rows)
    assert rows["cpu"]["formats"] == ["onnx"] and rows["cpu-tflite"]["formats"] == ["tflite"]
    for r in rows.values():
        assert set(r) == {"name", "kind", "source", "formats", "description"} | (
            {"path"} if r["kind"] == "android" else set()) and r["description"]


def test_list_includes_android_profiles(profiles):
    rows = {r["name"]: r for r in list_devices()}
    assert rows["pixel4"] == {"name": "pixel4", "kind": "android", "source": "builtin", "formats": ["tflite"],
                              "description": "Google Pixel 4 (Snapdragon 855)",
                              "path": str(profiles / "pixel4.yaml")}


def test_broken_profile_still_lists(profiles):
    (profiles / "broken.yaml").write_text("description: [unclosed\n")
    rows = {r["name"]: r for r in list_devices()}
    assert "unreadable" in rows["broken"]["description"]


def test_unknown_name_lists_known_names(profiles):
    with pytest.raises(DeviceError) as info:
        get_device("pixel99")
    msg = str(info.value)
    assert "pixel99" in msg and "cpu, cpu-tflite, cuda, pixel4" in msg


def test_get_local_devices():
    cpu = get_device("cpu")
    assert isinstance(cpu, OnnxCpuDevice) and isinstance(cpu, Device) and cpu.name == "cpu"
    assert isinstance(get_device("cpu-tflite"), LiteRtCpuDevice)


def test_options_reach_the_device():
    dev = get_device("cpu", threads=2, affinity=None, graph_opt_level="basic")
    assert dev.threads == 2 and dev.cpus is None and dev.graph_opt_level == "ORT_ENABLE_BASIC"


def test_protocol_fields_are_folded():
    dev = get_device("cpu", min_runs=7, warmup_runs=1, min_time_s=0.5)
    assert dev.protocol == ProtocolSettings(min_runs=7, warmup_runs=1, min_time_s=0.5)
    base = ProtocolSettings(max_time_s=3.0)
    assert get_device("cpu", protocol=base, min_runs=9).protocol == ProtocolSettings(max_time_s=3.0, min_runs=9)


def test_unknown_option_is_an_error():
    with pytest.raises(DeviceError, match="does not take option.*serial"):
        get_device("cpu", serial="emulator-5554")


def test_cuda_without_gpu_says_so():
    from latkit.devices.cuda import cuda_provider_available

    if cuda_provider_available()[0]:
        pytest.skip("a CUDA provider is available here")
    with pytest.raises(DeviceError, match="no CUDA GPU/provider.*use --device cpu"):
        get_device("cuda")


def test_android_profile_without_android_module(profiles, monkeypatch):
    monkeypatch.setitem(sys.modules, "latkit.devices.android", None)  # import fails
    with pytest.raises(DeviceError, match="Android device module"):
        get_device("pixel4")


def test_android_profile_uses_from_profile(profiles, monkeypatch):
    calls = []

    class FakeAndroid:
        @classmethod
        def from_profile(cls, name, *, serial=None, threads=None, protocol=None):
            calls.append((name, serial, threads, protocol))
            return "android-device"

    fake = types.ModuleType("latkit.devices.android")
    fake.AndroidDevice = FakeAndroid
    monkeypatch.setitem(sys.modules, "latkit.devices.android", fake)
    assert get_device("pixel4", serial="127.0.0.1:5037", threads=1, min_runs=3) == "android-device"
    assert calls == [("pixel4", "127.0.0.1:5037", 1, ProtocolSettings(min_runs=3))]
    with pytest.raises(DeviceError, match="does not take option.*graph_opt_level"):
        get_device("pixel4", graph_opt_level="all")
