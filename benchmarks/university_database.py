"""A third sample database for the SQL benchmark, written for kb's benchmarks (not a public dump): a
university's departments, instructors, courses, sections, students and enrollments, with
``<table>_id`` keys, singular table names and a self-reference (a student's advisor is an
instructor). Its rows are drawn from a seeded generator, so every run builds the same database.

It was made to give the text-to-SQL work a ``dev`` set on a schema that none of kb's rules, prompts or
cue words had been written against (benchmarks/data/sql_university.yaml). Its dev part has since been
studied and some of kb's SQL checks were written from its misses, so only its test part (scored,
never read) measures kb on data it was not tuned to. :func:`script` is the whole database as one
SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "university"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS university;
USE university;
DROP TABLE IF EXISTS enrollment, section, student, course, instructor, department;
CREATE TABLE department (
  department_id INT PRIMARY KEY,
  name VARCHAR(60) NOT NULL,
  building VARCHAR(40) NOT NULL,
  budget DECIMAL(12, 2) NOT NULL
);
CREATE TABLE instructor (
  instructor_id INT PRIMARY KEY,
  first_name VARCHAR(40) NOT NULL,
  last_name VARCHAR(40) NOT NULL,
  department_id INT NOT NULL,
  rank_title VARCHAR(30) NOT NULL,
  hire_date DATE NOT NULL,
  salary DECIMAL(10, 2) NOT NULL,
  FOREIGN KEY (department_id) REFERENCES department (department_id)
);
CREATE TABLE course (
  course_id INT PRIMARY KEY,
  code VARCHAR(12) NOT NULL UNIQUE,
  title VARCHAR(80) NOT NULL,
  department_id INT NOT NULL,
  credits TINYINT NOT NULL,
  FOREIGN KEY (department_id) REFERENCES department (department_id)
);
CREATE TABLE section (
  section_id INT PRIMARY KEY,
  course_id INT NOT NULL,
  instructor_id INT NOT NULL,
  term VARCHAR(12) NOT NULL,
  room VARCHAR(12) NOT NULL,
  capacity SMALLINT NOT NULL,
  FOREIGN KEY (course_id) REFERENCES course (course_id),
  FOREIGN KEY (instructor_id) REFERENCES instructor (instructor_id)
);
CREATE TABLE student (
  student_id INT PRIMARY KEY,
  first_name VARCHAR(40) NOT NULL,
  last_name VARCHAR(40) NOT NULL,
  major_id INT NULL,
  advisor_id INT NULL,
  admitted_on DATE NOT NULL,
  home_country VARCHAR(40) NOT NULL,
  FOREIGN KEY (major_id) REFERENCES department (department_id),
  FOREIGN KEY (advisor_id) REFERENCES instructor (instructor_id)
);
CREATE TABLE enrollment (
  enrollment_id INT PRIMARY KEY,
  student_id INT NOT NULL,
  section_id INT NOT NULL,
  enrolled_at DATETIME NOT NULL,
  grade CHAR(2) NULL,
  UNIQUE (student_id, section_id),
  FOREIGN KEY (student_id) REFERENCES student (student_id),
  FOREIGN KEY (section_id) REFERENCES section (section_id)
);
"""

DEPARTMENTS = [
    ("Computer Science", "Turing Hall"),
    ("Mathematics", "Noether Hall"),
    ("Physics", "Curie Building"),
    ("History", "Bloch House"),
    ("Economics", "Keynes Building"),
    ("Biology", "Darwin Labs"),
    ("Philosophy", "Bloch House"),
]
FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Emmy",
    "Marie",
    "Niels",
    "Rosa",
    "Carl",
    "Hannah",
    "Ibn",
    "Mei",
    "Sofia",
    "Omar",
    "Lena",
    "Tomas",
    "Yuki",
    "Ravi",
    "Ines",
    "Kofi",
    "Zara",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Noether",
    "Curie",
    "Bohr",
    "Franklin",
    "Gauss",
    "Arendt",
    "Khaldun",
    "Chen",
    "Kovalevskaya",
    "Haddad",
    "Berg",
    "Novak",
    "Tanaka",
    "Patel",
    "Duarte",
    "Mensah",
    "Ahmed",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Larsen",
]
RANKS = ["Lecturer", "Assistant Professor", "Associate Professor", "Professor"]
COUNTRIES = ["Germany", "France", "India", "Nigeria", "Japan", "Brazil", "Canada", "Italy"]
COURSE_WORDS = {
    "Computer Science": ["Algorithms", "Databases", "Operating Systems", "Compilers", "Machine Learning", "Networks"],
    "Mathematics": ["Linear Algebra", "Calculus I", "Calculus II", "Probability", "Topology"],
    "Physics": ["Mechanics", "Electromagnetism", "Quantum Physics", "Thermodynamics"],
    "History": ["Ancient Rome", "Medieval Europe", "Modern Asia", "History of Science"],
    "Economics": ["Microeconomics", "Macroeconomics", "Econometrics", "Game Theory"],
    "Biology": ["Genetics", "Ecology", "Cell Biology", "Evolution"],
    "Philosophy": ["Logic", "Ethics", "Philosophy of Mind"],
}
PREFIXES = {
    "Computer Science": "CS",
    "Mathematics": "MATH",
    "Physics": "PHYS",
    "History": "HIST",
    "Economics": "ECON",
    "Biology": "BIO",
    "Philosophy": "PHIL",
}
TERMS = ["2023-Fall", "2024-Spring", "2024-Fall", "2025-Spring", "2025-Fall"]
GRADES = ["A", "A", "B", "B", "B", "C", "C", "D", "F"]


def script(seed: int = 2026) -> str:
    """The database as one SQL script: schema, then every row (the same for the same ``seed``)."""
    rng = random.Random(seed)
    departments = [
        (i, name, building, float(rng.randrange(400, 2400) * 1000)) for i, (name, building) in enumerate(DEPARTMENTS, 1)
    ]
    instructors = []
    for i in range(1, 36):
        department = (i - 1) % len(DEPARTMENTS) + 1
        hired = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(0, 9000))
        rank = rng.choice(RANKS)
        salary = float(55000 + RANKS.index(rank) * 15000 + rng.randrange(0, 12000))
        instructors.append(
            (i, rng.choice(FIRST), rng.choice(LAST), department, rank, hired.isoformat(), round(salary, 2))
        )
    courses = []
    for department_id, (department, _) in enumerate(DEPARTMENTS, 1):
        prefix = PREFIXES[department]
        for n, title in enumerate(COURSE_WORDS[department], 1):
            courses.append(
                (
                    len(courses) + 1,
                    f"{prefix}{100 * n + rng.randrange(1, 9)}",
                    title,
                    department_id,
                    rng.choice([3, 3, 4, 5, 6]),
                )
            )
    by_department: dict[int, list[int]] = {}
    for instructor in instructors:
        by_department.setdefault(instructor[3], []).append(instructor[0])
    sections = []
    for term in TERMS:
        for course in courses:
            if rng.random() < 0.7:
                sections.append(
                    (
                        len(sections) + 1,
                        course[0],
                        rng.choice(by_department[course[3]]),
                        term,
                        f"R{rng.randrange(100, 420)}",
                        rng.choice([20, 30, 40, 60, 120]),
                    )
                )
    students = []
    for i in range(1, 401):
        admitted = dt.date(2021, 9, 1) + dt.timedelta(days=365 * rng.randrange(0, 4) + rng.randrange(0, 20))
        major = rng.randrange(1, len(DEPARTMENTS) + 1) if rng.random() < 0.9 else None
        advisor = rng.choice(by_department[major]) if major and rng.random() < 0.8 else None
        students.append(
            (i, rng.choice(FIRST), rng.choice(LAST), major, advisor, admitted.isoformat(), rng.choice(COUNTRIES))
        )
    enrollments = []
    term_start = {t: dt.datetime(int(t[:4]), 9 if t.endswith("Fall") else 2, 1) for t in TERMS}
    for student in students:
        taken = rng.sample(sections, rng.randrange(2, 9))
        for section in taken:
            when = term_start[section[3]] - dt.timedelta(days=rng.randrange(1, 40), minutes=rng.randrange(0, 1440))
            last_term = section[3] == TERMS[-1]
            grade = None if last_term and rng.random() < 0.6 else rng.choice(GRADES)
            enrollments.append((len(enrollments) + 1, student[0], section[0], when.isoformat(sep=" "), grade))
    return (
        SCHEMA
        + insert_statement("department", departments)
        + insert_statement("instructor", instructors)
        + insert_statement("course", courses)
        + insert_statement("section", sections)
        + insert_statement("student", students)
        + insert_statement("enrollment", enrollments)
    )


if __name__ == "__main__":
    print(script())
