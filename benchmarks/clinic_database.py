"""A fifth sample database for the SQL benchmark, written for kb's benchmarks (not a public dump): a
clinic's departments, doctors, patients, appointments, medications, prescriptions and invoices. Its
naming differs from the other generated databases' on purpose: PascalCase tables and columns with
``ID`` keys (``PatientID``, ``DoctorID``), as in many SQL Server-era schemas; a doctor's supervisor is
another doctor (a self-reference); an appointment names its doctor and, optionally, the doctor who
referred the patient (two foreign keys to one table); a SET column (a patient's allergies); money in
DECIMAL, NULLs that mean "not yet" (an invoice not paid). Its rows are drawn from a seeded generator, so
every run builds the same database.

It was made to give the text-to-SQL work a fifth ``dev`` set, on a domain and a naming style that none
of kb's rules, prompts or cue words had been written against (benchmarks/data/sql_clinic.yaml). Its
dev part has since been studied and some of kb's SQL checks were written from its misses, so only
its test part (scored, never read) measures kb on data it was not tuned to. :func:`script` is the
whole database as one SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "clinic"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS clinic;
USE clinic;
DROP TABLE IF EXISTS Invoices, Prescriptions, Medications, Appointments, Patients, Doctors, Departments;
CREATE TABLE Departments (
  DepartmentID INT PRIMARY KEY,
  DepartmentName VARCHAR(40) NOT NULL,
  Floor TINYINT NOT NULL
);
CREATE TABLE Doctors (
  DoctorID INT PRIMARY KEY,
  FirstName VARCHAR(40) NOT NULL,
  LastName VARCHAR(40) NOT NULL,
  DepartmentID INT NOT NULL,
  SupervisorID INT NULL,
  Specialty VARCHAR(40) NOT NULL,
  StartDate DATE NOT NULL,
  HourlyRate DECIMAL(7, 2) NOT NULL,
  FOREIGN KEY (DepartmentID) REFERENCES Departments (DepartmentID),
  FOREIGN KEY (SupervisorID) REFERENCES Doctors (DoctorID)
);
CREATE TABLE Patients (
  PatientID INT PRIMARY KEY,
  FirstName VARCHAR(40) NOT NULL,
  LastName VARCHAR(40) NOT NULL,
  BirthDate DATE NOT NULL,
  Sex ENUM('F', 'M', 'X') NOT NULL,
  City VARCHAR(40) NOT NULL,
  InsuranceProvider VARCHAR(40) NULL,
  Allergies SET('penicillin', 'latex', 'peanuts', 'pollen') NOT NULL DEFAULT ''
);
CREATE TABLE Appointments (
  AppointmentID INT PRIMARY KEY,
  PatientID INT NOT NULL,
  DoctorID INT NOT NULL,
  ReferredByID INT NULL,
  StartsAt DATETIME NOT NULL,
  DurationMinutes SMALLINT NOT NULL,
  Outcome ENUM('completed', 'no-show', 'cancelled', 'booked') NOT NULL,
  Reason VARCHAR(60) NOT NULL,
  FOREIGN KEY (PatientID) REFERENCES Patients (PatientID),
  FOREIGN KEY (DoctorID) REFERENCES Doctors (DoctorID),
  FOREIGN KEY (ReferredByID) REFERENCES Doctors (DoctorID)
);
CREATE TABLE Medications (
  MedicationID INT PRIMARY KEY,
  MedicationName VARCHAR(40) NOT NULL,
  Form ENUM('tablet', 'capsule', 'syrup', 'injection', 'cream') NOT NULL,
  UnitPrice DECIMAL(6, 2) NOT NULL,
  RequiresPrescription TINYINT(1) NOT NULL
);
CREATE TABLE Prescriptions (
  PrescriptionID INT PRIMARY KEY,
  AppointmentID INT NOT NULL,
  MedicationID INT NOT NULL,
  Quantity SMALLINT NOT NULL,
  Refills TINYINT NOT NULL,
  FOREIGN KEY (AppointmentID) REFERENCES Appointments (AppointmentID),
  FOREIGN KEY (MedicationID) REFERENCES Medications (MedicationID)
);
CREATE TABLE Invoices (
  InvoiceID INT PRIMARY KEY,
  AppointmentID INT NOT NULL UNIQUE,
  Amount DECIMAL(8, 2) NOT NULL,
  IssuedOn DATE NOT NULL,
  PaidOn DATE NULL,
  PaymentMethod ENUM('card', 'cash', 'insurance', 'transfer') NULL,
  FOREIGN KEY (AppointmentID) REFERENCES Appointments (AppointmentID)
);
"""

DEPARTMENTS = [
    (1, "Cardiology", 3),
    (2, "Dermatology", 2),
    (3, "Pediatrics", 1),
    (4, "Orthopedics", 2),
    (5, "Neurology", 4),
    (6, "General Practice", 1),
]
SPECIALTIES = {
    1: ["Interventional cardiology", "Electrophysiology"],
    2: ["Dermatologic surgery", "Pediatric dermatology"],
    3: ["Neonatology", "General pediatrics"],
    4: ["Sports medicine", "Spine surgery"],
    5: ["Epilepsy", "Stroke medicine"],
    6: ["Family medicine"],
}
REASONS = {
    1: ["chest pain", "follow-up ECG", "hypertension check"],
    2: ["rash", "mole check", "acne"],
    3: ["vaccination", "fever", "growth check"],
    4: ["knee pain", "back pain", "fracture follow-up"],
    5: ["migraine", "seizure review", "dizziness"],
    6: ["annual check-up", "flu symptoms", "blood test"],
}
MEDICATIONS = [
    (1, "Amoxicillin", "capsule", 8.50, 1),
    (2, "Ibuprofen", "tablet", 3.20, 0),
    (3, "Paracetamol", "tablet", 2.10, 0),
    (4, "Atorvastatin", "tablet", 12.40, 1),
    (5, "Hydrocortisone", "cream", 6.75, 0),
    (6, "Salbutamol", "syrup", 9.90, 1),
    (7, "Levetiracetam", "tablet", 21.00, 1),
    (8, "Metoprolol", "tablet", 7.30, 1),
    (9, "Insulin glargine", "injection", 34.50, 1),
    (10, "Cetirizine", "tablet", 4.60, 0),
    (11, "Sumatriptan", "tablet", 15.80, 1),
    (12, "Diclofenac", "cream", 5.40, 0),
]
FIRST = ["Maria", "Jonas", "Lea", "Tomas", "Sofia", "Elias", "Nora", "Karl", "Anna", "Felix", "Ida", "Omar"]
LAST = ["Berg", "Novak", "Keller", "Dahl", "Weber", "Horvat", "Lund", "Brandt", "Fischer", "Kovac"]
CITIES = ["Graz", "Linz", "Vienna", "Salzburg", "Innsbruck", "Klagenfurt"]
INSURERS = ["OEGK", "BVAEB", "SVS", "Allianz Care", None]
ALLERGIES = ["penicillin", "latex", "peanuts", "pollen"]


def script(seed: int = 2027) -> str:
    """The database as one SQL script: schema, then every row (the same for the same ``seed``)."""
    rng = random.Random(seed)
    doctors: list[tuple[object, ...]] = []
    heads: dict[int, int] = {}
    for i in range(1, 31):
        department = DEPARTMENTS[(i - 1) % len(DEPARTMENTS)][0]
        supervisor = heads.get(department)
        heads.setdefault(department, i)
        started = dt.date(2004, 1, 1) + dt.timedelta(days=rng.randrange(0, 7300))
        doctors.append(
            (
                i,
                rng.choice(FIRST),
                rng.choice(LAST),
                department,
                supervisor,
                rng.choice(SPECIALTIES[department]),
                started.isoformat(),
                float(rng.randrange(60, 190)) + rng.choice([0.0, 0.5]),
            )
        )
    patients: list[tuple[object, ...]] = []
    for i in range(1, 401):
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 30000))
        allergies = ",".join(a for a in ALLERGIES if rng.random() < 0.12)
        patients.append(
            (
                i,
                rng.choice(FIRST),
                rng.choice(LAST),
                born.isoformat(),
                rng.choice(["F", "F", "M", "M", "X"]),
                rng.choice(CITIES),
                rng.choice(INSURERS),
                allergies,
            )
        )
    appointments: list[tuple[object, ...]] = []
    prescriptions: list[tuple[object, ...]] = []
    invoices: list[tuple[object, ...]] = []
    start = dt.datetime(2024, 1, 2, 8, 0)
    for i in range(1, 1601):
        doctor = rng.choice(doctors)
        department = int(str(doctor[3]))
        starts = start + dt.timedelta(days=rng.randrange(0, 700), minutes=15 * rng.randrange(0, 36))
        outcome = (
            "booked" if starts >= dt.datetime(2025, 10, 1) else rng.choice(["completed"] * 8 + ["no-show", "cancelled"])
        )
        referred = rng.choice([d[0] for d in doctors if d[0] != doctor[0]]) if rng.random() < 0.25 else None
        appointments.append(
            (
                i,
                rng.randrange(1, len(patients) + 1),
                doctor[0],
                referred,
                starts.isoformat(sep=" "),
                rng.choice([15, 20, 30, 45, 60]),
                outcome,
                rng.choice(REASONS[department]),
            )
        )
        if outcome != "completed":
            continue
        for medication in rng.sample(MEDICATIONS, rng.choice([0, 0, 1, 1, 2])):
            prescriptions.append(
                (len(prescriptions) + 1, i, medication[0], rng.choice([10, 20, 30, 60]), rng.randrange(0, 4))
            )
        issued = starts.date() + dt.timedelta(days=rng.randrange(0, 4))
        paid = issued + dt.timedelta(days=rng.randrange(0, 60)) if rng.random() < 0.85 else None
        method = rng.choice(["card", "cash", "insurance", "insurance", "transfer"]) if paid else None
        amount = round(float(doctor[7]) * rng.choice([15, 20, 30, 45, 60]) / 60 + rng.randrange(0, 40), 2)
        invoices.append((len(invoices) + 1, i, amount, issued.isoformat(), paid.isoformat() if paid else None, method))
    return (
        SCHEMA
        + insert_statement("Departments", DEPARTMENTS)
        + insert_statement("Doctors", doctors)
        + insert_statement("Patients", patients)
        + insert_statement("Appointments", appointments)
        + insert_statement("Medications", MEDICATIONS)
        + insert_statement("Prescriptions", prescriptions)
        + insert_statement("Invoices", invoices)
    )


if __name__ == "__main__":
    print(script())
