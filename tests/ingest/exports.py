"""Small files in the shapes of real wearable exports, made by the tests (no downloads)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

APPLE_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 13 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
]>
<HealthData locale="en_US">
 <ExportDate value="2024-01-03 10:00:00 +0100"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="" HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexNotSet"/>
"""
APPLE_TAIL = "</HealthData>\n"


def apple_record(kind: str, start: str, end: str | None = None, value: str = "", unit: str = "") -> str:
    unit_attr = f' unit="{unit}"' if unit else ""
    return (f' <Record type="{kind}" sourceName="Watch" sourceVersion="10.1"{unit_attr} '
            f'creationDate="{end or start}" startDate="{start}" endDate="{end or start}" value="{value}">\n'
            '  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="0"/>\n'
            " </Record>\n")


def apple_heart_rates(n: int, day: str = "2024-01-02") -> list[str]:
    """``n`` heart-rate records a minute apart from 08:00 +0100."""
    return [apple_record("HKQuantityTypeIdentifierHeartRate",
                         f"{day} {8 + i // 60:02d}:{i % 60:02d}:00 +0100", value=str(60 + i % 30),
                         unit="count/min") for i in range(n)]


def apple_export_xml(records: list[str]) -> str:
    return APPLE_HEAD + "".join(records) + APPLE_TAIL


APPLE_MIXED = [
    apple_record("HKQuantityTypeIdentifierHeartRate", "2024-01-02 08:00:00 +0100", value="72", unit="count/min"),
    apple_record("HKQuantityTypeIdentifierStepCount", "2024-01-02 08:00:00 +0100", "2024-01-02 08:05:00 +0100",
                 "310", "count"),
    apple_record("HKCategoryTypeIdentifierSleepAnalysis", "2024-01-02 01:00:00 +0100",
                 "2024-01-02 01:40:00 +0100", "HKCategoryValueSleepAnalysisAsleepDeep"),
    apple_record("HKCategoryTypeIdentifierSleepAnalysis", "2024-01-02 00:30:00 +0100",
                 "2024-01-02 07:00:00 +0100", "HKCategoryValueSleepAnalysisInBed"),
    apple_record("HKQuantityTypeIdentifierBodyMass", "2024-01-02 08:00:00 +0100", value="70", unit="kg"),
    apple_record("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "2024-01-02 08:00:00 +0100",
                 value="41", unit="ms"),
    ' <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="30" durationUnit="min" '
    'startDate="2024-01-02 18:00:00 +0100" endDate="2024-01-02 18:30:00 +0100">\n'
    '  <WorkoutEvent type="HKWorkoutEventTypeSegment" date="2024-01-02 18:00:00 +0100"/>\n </Workout>\n',
]

CDA_XML = """<?xml version="1.0"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <realmCode code="US"/>
 <component><structuredBody><component><section><entry><organizer><component><observation>
  <code code="8867-4" codeSystem="2.16.840.1.113883.6.1" displayName="Heart rate"/>
  <effectiveTime><low value="20240102080000+0100"/></effectiveTime>
  <value xsi:type="PQ" value="72" unit="count/min"/>
 </observation></component></organizer></entry></section></component></structuredBody></component>
</ClinicalDocument>
"""


def apple_export_zip(path: Path, records: list[str]) -> Path:
    """The Health app's export.zip: export.xml, export_cda.xml, routes and ECGs."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("apple_health_export/export.xml", apple_export_xml(records))
        z.writestr("apple_health_export/export_cda.xml", CDA_XML)
        z.writestr("apple_health_export/workout-routes/route_2024-01-02_6.00pm.gpx",
                   '<?xml version="1.0"?><gpx version="1.1"><trk><trkseg>'
                   '<trkpt lat="52.5" lon="13.4"><time>2024-01-02T17:00:00Z</time></trkpt>'
                   "</trkseg></trk></gpx>")
        z.writestr("apple_health_export/electrocardiograms/ecg_2024-01-02.csv",
                   "Name,Test\nDate of Birth,1980-01-01\nRecorded Date,2024-01-02 09:00:00 +0100\n\n-12.3\n-11.9\n")
    return path


def fitbit_heart_rate(day: str = "01/05/24", n: int = 4) -> list[dict]:
    return [{"dateTime": f"{day} 08:00:{i * 5:02d}", "value": {"bpm": 70 + i, "confidence": 2}} for i in range(n)]


def fitbit_steps(day: str = "01/05/24") -> list[dict]:
    return [{"dateTime": f"{day} 08:0{i}:00", "value": v} for i, v in enumerate(["0", "12", "95"])]


FITBIT_SLEEP = [{
    "logId": 41_000_000_001, "dateOfSleep": "2024-01-06", "startTime": "2024-01-05T23:10:00.000",
    "endTime": "2024-01-06T00:50:00.000", "duration": 6_000_000, "minutesToFallAsleep": 0,
    "minutesAsleep": 90, "minutesAwake": 10, "timeInBed": 100, "efficiency": 95, "type": "stages",
    "infoCode": 0, "mainSleep": True,
    "levels": {
        "summary": {"deep": {"count": 1, "minutes": 60, "thirtyDayAvgMinutes": 0}},
        "data": [
            {"dateTime": "2024-01-05T23:10:00.000", "level": "wake", "seconds": 600},
            {"dateTime": "2024-01-05T23:20:00.000", "level": "light", "seconds": 1800},
            {"dateTime": "2024-01-05T23:50:00.000", "level": "deep", "seconds": 3600},
        ],
        "shortData": [{"dateTime": "2024-01-05T23:30:00.000", "level": "wake", "seconds": 60}],
    },
}]


def google_fit_points() -> dict:
    ns = 1_704_441_600_000_000_000  # 2024-01-05T08:00:00Z

    def point(kind: str, start: int, end: int, value: dict) -> dict:
        return {"fitValue": [{"value": value}], "originDataSourceId": "", "endTimeNanos": end,
                "dataTypeName": kind, "startTimeNanos": start, "modifiedTimeMillis": 1_704_441_700_000,
                "rawTimestampNanos": 0}

    minute = 60 * 10**9
    return {"Data Source": "derived:com.google.heart_rate.bpm:com.google.android.gms:merged",
            "Data Points": [
                point("com.google.heart_rate.bpm", ns, ns, {"fpVal": 64.0}),
                point("com.google.step_count.delta", ns, ns + minute, {"intVal": 80}),
                point("com.google.sleep.segment", ns - 60 * minute, ns - 30 * minute, {"intVal": 5}),
                point("com.google.sleep.segment", ns - 30 * minute, ns - 20 * minute, {"intVal": 3}),
                point("com.google.calories.expended", ns, ns + minute, {"fpVal": 1.3}),
            ]}


GOOGLE_FIT_DAILY = (
    "Start time,End time,Move Minutes count,Calories (kcal),Distance (m),Heart Points,Heart Minutes,"
    "Average heart rate (bpm),Max heart rate (bpm),Min heart rate (bpm),Average speed (m/s),"
    "Max speed (m/s),Min speed (m/s),Step count,Walking duration (ms)\n"
    "00:00:00.000+01:00,00:15:00.000+01:00,,1.2,,,,,,,,,,,\n"
    "08:00:00.000+01:00,08:15:00.000+01:00,5,20.5,300.2,2,2,92.5,110,80,1.2,1.5,0.9,612,500000\n"
    "23:45:00.000+01:00,00:00:00.000+01:00,,1.2,,,,,,,,,,45,\n"
)

WHOOP_ZONE_ROW = "2024-03-10 23:02:11,2024-03-11 22:40:00,UTC-05:00"
WHOOP_CYCLES = (
    "Cycle start time,Cycle end time,Cycle timezone,Recovery score %,Resting heart rate (bpm),"
    "Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,Day Strain,Energy burned (cal),"
    "Max HR (bpm),Average HR (bpm),Sleep onset,Wake onset,Sleep performance %,Respiratory rate (rpm),"
    "Asleep duration (min),In bed duration (min),Light sleep duration (min),Deep (SWS) duration (min),"
    "REM duration (min),Awake duration (min),Sleep need (min),Sleep debt (min),Sleep efficiency %,"
    "Sleep consistency %\n"
    f"{WHOOP_ZONE_ROW},66,55,48,33.4,95.2,12.1,2100,160,70,2024-03-10 23:02:11,2024-03-11 06:50:00,"
    "88,15.2,420,468,200,90,130,48,480,20,90,75\n"
)
WHOOP_SLEEPS = (
    "Cycle start time,Cycle end time,Cycle timezone,Sleep onset,Wake onset,Sleep performance %,"
    "Respiratory rate (rpm),Asleep duration (min),In bed duration (min),Light sleep duration (min),"
    "Deep (SWS) duration (min),REM duration (min),Awake duration (min),Sleep need (min),Sleep debt (min),"
    "Sleep efficiency %,Sleep consistency %,Nap\n"
    f"{WHOOP_ZONE_ROW},2024-03-10 23:02:11,2024-03-11 06:50:00,88,15.2,420,468,200,90,130,48,480,20,90,75,false\n"
)
WHOOP_WORKOUTS = (
    "Cycle start time,Cycle end time,Cycle timezone,Workout start time,Workout end time,Duration (min),"
    "Activity name,Activity Strain,Energy burned (cal),Max HR (bpm),Average HR (bpm),HR Zone 1 %,"
    "HR Zone 2 %,HR Zone 3 %,HR Zone 4 %,HR Zone 5 %,GPS enabled,Distance (meters),"
    "Altitude gain (meters),Altitude change (meters)\n"
    f"{WHOOP_ZONE_ROW},2024-03-11 17:00:00,2024-03-11 17:45:00,45,Running,14.8,620,182,158,5,10,30,40,15,"
    "true,8000,50,0\n"
)


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
