"""FHIR R4: the export and the search of a patient's samples, and the
CapabilityStatement, validated with fhir.resources."""

from __future__ import annotations

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation

from api.fhir import LOCAL_SYSTEM
from tests.api.factories import day_ms, put_samples

SEARCH = "/fhir/R4/Observation"


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
        assert coding.system in ("http://loinc.org", LOCAL_SYSTEM)
        codes.setdefault(coding.code, []).append(obs)
    assert len(codes["8867-4"]) == 5 and len(codes["55423-8"]) == 1 and "80404-7" not in codes
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


def _day(t0) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t0 / 1000, UTC).date().isoformat()


def test_hrv_rmssd_is_coded_in_the_local_code_system_and_not_as_sdnn(world, as_user):
    t0 = _load(world)
    start, end = _window(t0)
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/fhir/Observation",
                               {"start": start, "end": end, "metric": "hrv_rmssd"})
    [entry] = r.json()["entry"]
    assert entry["resource"]["code"]["coding"] == [
        {"system": LOCAL_SYSTEM, "code": "hrv_rmssd", "display": "Heart rate variability (RMSSD)"}]
    assert "80404-7" not in r.content.decode()
    assert entry["resource"]["valueQuantity"] == {"value": 48.2, "unit": "ms",
                                                  "system": "http://unitsofmeasure.org", "code": "ms"}


def test_observation_ids_name_the_sample_whatever_the_page_or_the_query(world, as_user):
    t0 = _load(world)
    start, end = _window(t0)
    client = as_user(world.alice)
    url = f"/api/v1/patients/{world.pat.pk}/fhir/Observation"
    whole = client.get(url, {"start": start, "end": end}).json()
    by_time = {(e["resource"]["code"]["coding"][0]["code"],
                e["resource"].get("effectiveDateTime") or e["resource"]["effectivePeriod"]["start"]):
               e["resource"]["id"] for e in whole["entry"]}
    assert len(set(by_time.values())) == len(by_time) == 9
    paged = []
    for offset in range(0, 9, 2):
        page = client.get(url, {"start": start, "end": end, "_count": 2, "_offset": offset}).json()
        paged += [e["resource"]["id"] for e in page["entry"]]
    assert paged == [e["resource"]["id"] for e in whole["entry"]]
    later = client.get(url, {"start": start, "end": end, "metric": "heart_rate", "_offset": 3}).json()
    assert [e["resource"]["id"] for e in later["entry"]] == [
        e["resource"]["id"] for e in whole["entry"] if e["resource"]["code"]["coding"][0]["code"] == "8867-4"][3:]
    searched = client.get(SEARCH, {"patient": world.pat.pk, "date": _day(t0)}).json()
    assert {e["resource"]["id"] for e in searched["entry"]} <= set(by_time.values())
    assert all(e["fullUrl"].endswith(f"/Observation/{e['resource']['id']}") for e in searched["entry"])


def test_a_sample_stored_twice_comes_back_once(world, as_user):
    t0 = day_ms(-1) + 8 * 3_600_000
    put_samples(world.pat.pk, "heart_rate", [t0], [70])
    put_samples(world.pat.pk, "heart_rate", [t0], [70])
    body = as_user(world.pat).get(SEARCH, {"patient": f"Patient/{world.pat.pk}", "code": "8867-4"}).json()
    assert len(body["entry"]) == 1


def test_the_capability_statement_is_served_at_metadata_without_signing_in(client):
    r = client.get("/fhir/R4/metadata")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/fhir+json")
    cs = CapabilityStatement.model_validate(r.json())
    assert cs.fhirVersion == "4.0.1" and cs.kind == "instance"
    [rest] = cs.rest
    [obs] = rest.resource
    assert obs.type == "Observation" and [i.code for i in obs.interaction] == ["search-type"]
    params = {p.name: p.type for p in obs.searchParam}
    assert params.items() >= {"patient": "reference", "code": "token", "date": "date"}.items()


def test_observation_search_by_patient_code_and_date(world, as_user):
    t0 = _load(world)
    client = as_user(world.alice)
    day = _day(t0)

    def ids(**params):
        r = client.get(SEARCH, {"patient": f"Patient/{world.pat.pk}", **params})
        assert r.status_code == 200, r.content
        bundle = Bundle.model_validate(r.json())
        return [(e.resource.code.coding[0].code, e.resource.effectiveDateTime or e.resource.effectivePeriod.start)
                for e in bundle.entry or []]

    assert len(ids(code="http://loinc.org|8867-4")) == 5
    assert len(ids(code="8867-4,55423-8")) == 6
    assert ids(code=f"{LOCAL_SYSTEM}|hrv_rmssd") == ids(code="hrv_rmssd") and len(ids(code="hrv_rmssd")) == 1
    assert ids(code="http://loinc.org|80404-7") == [] and ids(code="http://snomed.info/sct|8867-4") == []
    # The day of t0 holds all but the night's sleep (it started 6 h before 08:00 the same day).
    assert len(ids(date=day)) == 9 and len(ids(date=f"eq{day}")) == 9 and len(ids(date=day[:7])) >= 9
    from datetime import UTC, datetime, timedelta

    at = datetime.fromtimestamp(t0 / 1000, UTC)
    two_minutes = (at + timedelta(minutes=2)).isoformat()
    hr_from = ids(code="8867-4", date=f"ge{two_minutes}")
    assert len(hr_from) == 3
    hr_window = client.get(SEARCH, [("patient", world.pat.pk), ("code", "8867-4"),
                                    ("date", f"ge{at.isoformat()}"), ("date", f"lt{two_minutes}")])
    assert len(hr_window.json()["entry"]) == 2
    assert len(ids(code="8867-4", date=f"gt{two_minutes}")) == 2
    assert len(ids(code="8867-4", date=f"le{two_minutes}")) == 3
    assert ids(date=f"lt{day}") == []
    assert len(ids(date=f"gt{day}")) == 0


def test_observation_search_refuses_bad_parameters_with_a_named_reason(world, as_user):
    client = as_user(world.alice)
    cases = [({}, "patient"), ({"patient": "Group/1"}, "patient"),
             ({"patient": world.pat.pk, "date": "sa2026-01-01"}, "date"),
             ({"patient": world.pat.pk, "date": "2026-01-01T10:00:00"}, "date"),
             ({"patient": world.pat.pk, "date": "yesterday"}, "date"),
             ({"patient": world.pat.pk, "subject": "Patient/1"}, "subject"),
             ({"patient": world.pat.pk, "code": "http://loinc.org|"}, "code")]
    for params, field in cases:
        r = client.get(SEARCH, params)
        assert r.status_code == 400, (params, r.status_code)
        assert field in r.content.decode(), (params, r.content)
    assert client.get(SEARCH, {"patient": world.other.pk}).status_code == 404
