"""FHIR R4 export of a patient's samples, validated with fhir.resources."""

from __future__ import annotations

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from tests.api.factories import day_ms, put_samples


def _load(world):
    t0 = day_ms(-1) + 8 * 3_600_000
    hr_t = t0 + np.arange(5) * 60_000
    put_samples(world.pat.pk, "heart_rate", hr_t, [61, 62, 63, 64, 65])
    put_samples(world.pat.pk, "steps", [t0], [120], ends=[t0 + 60_000])
    put_samples(world.pat.pk, "sleep_stage", [t0 - 6 * 3_600_000], None,
                ends=[t0 - 5 * 3_600_000], labels=["deep"])
    put_samples(world.pat.pk, "activity", [t0 + 3_600_000], [210.5], ends=[t0 + 5_400_000],
                labels=["running"], levels=[3])
    put_samples(world.pat.pk, "hrv_rmssd", [t0], [48.2])
    return t0


def _window(t0):
    from datetime import UTC, datetime

    start = datetime.fromtimestamp((t0 - 12 * 3_600_000) / 1000, UTC).isoformat()
    end = datetime.fromtimestamp((t0 + 12 * 3_600_000) / 1000, UTC).isoformat()
    return start, end


def test_the_export_is_a_valid_fhir_r4_bundle_of_loinc_coded_observations(world, as_user):
    t0 = _load(world)
    start, end = _window(t0)
    r = as_user(world.alice).get(f"/api/v1/patients/{world.pat.pk}/fhir/Observation",
                                 {"start": start, "end": end})
    assert r.status_code == 200 and r["Content-Type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(r.json())
    assert bundle.type == "searchset" and len(bundle.entry) == 9
    codes = {}
    for entry in bundle.entry:
        obs = Observation.model_validate(entry.resource.model_dump())
        assert obs.subject.reference == f"Patient/{world.pat.pk}"
        coding = obs.code.coding[0]
        assert coding.system == "http://loinc.org"
        codes.setdefault(coding.code, []).append(obs)
    assert len(codes["8867-4"]) == 5 and len(codes["55423-8"]) == 1 and len(codes["80404-7"]) == 1
    hr = codes["8867-4"][0]
    assert hr.valueQuantity.code == "/min" and hr.category[0].coding[0].code == "vital-signs"
    assert float(hr.valueQuantity.value) == 61.0
    sleep = codes["93832-4"][0]
    assert float(sleep.valueQuantity.value) == 60.0 and sleep.effectivePeriod is not None


def test_the_export_pages_with_a_next_link(world, as_user):
    t0 = _load(world)
    start, end = _window(t0)
    url = f"/api/v1/patients/{world.pat.pk}/fhir/Observation"
    client = as_user(world.pat)
    first = client.get(url, {"start": start, "end": end, "metric": "heart_rate", "_count": 3}).json()
    assert len(first["entry"]) == 3
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get(nxt).json()
    assert len(second["entry"]) == 2 and all(link["relation"] != "next" for link in second["link"])
    values = [e["resource"]["valueQuantity"]["value"] for e in first["entry"] + second["entry"]]
    assert values == [61, 62, 63, 64, 65]


def test_the_export_refuses_an_unknown_metric_and_a_reversed_range(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/fhir/Observation"
    assert client.get(url, {"metric": "mood"}).status_code == 400
    assert client.get(url, {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}).status_code == 400
