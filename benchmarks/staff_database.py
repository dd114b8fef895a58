"""A sixth sample database for the SQL benchmark, written for kb's benchmarks (not a public dump): a
company's departments, staff, salary and title histories, projects, project assignments, timesheets
and leave requests. Its naming differs from the other generated databases' on purpose: short,
abbreviated names (``emp``, ``depts``, ``emp_no``, ``mgr_no``, ``hrs``, ``pct``) as in many
older in-house schemas; a text key (``dept_code``); history tables whose current row is the one
with no ``to_date`` (a salary, a job title), with composite primary keys; a self-reference (an
employee's manager); two foreign keys from one table to ``emp`` (a leave request's employee and
the approver; a project's lead is a third); a ``DATETIME`` with times of day (when a request was
submitted); hours in ``DECIMAL``; flags in ``TINYINT(1)``; NULLs that mean "still" (still employed,
a project not finished, an internal project without a client). Its rows are drawn from a seeded
generator, so every run builds the same database.

It was made to give the text-to-SQL work a sixth ``dev`` set, on a domain and a naming style that none
of kb's rules, prompts or cue words had been written against (benchmarks/data/sql_staff.yaml). Its
dev part has since been studied and some of kb's SQL checks were written from its misses, so only
its test part (scored, never read) measures kb on data it was not tuned to. :func:`script` is the
whole database as one SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "staff"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS staff;
USE staff;
DROP TABLE IF EXISTS leave_requests, timesheets, assignments, projects, titles, salaries, emp, depts;
CREATE TABLE depts (
  dept_code CHAR(4) PRIMARY KEY,
  dept_name VARCHAR(40) NOT NULL,
  site VARCHAR(30) NOT NULL,
  budget_eur DECIMAL(12, 2) NOT NULL
);
CREATE TABLE emp (
  emp_no INT PRIMARY KEY,
  first_name VARCHAR(30) NOT NULL,
  last_name VARCHAR(30) NOT NULL,
  gender ENUM('F', 'M', 'D') NOT NULL,
  birth_date DATE NOT NULL,
  hire_date DATE NOT NULL,
  exit_date DATE NULL,
  dept_code CHAR(4) NOT NULL,
  mgr_no INT NULL,
  remote TINYINT(1) NOT NULL,
  FOREIGN KEY (dept_code) REFERENCES depts (dept_code),
  FOREIGN KEY (mgr_no) REFERENCES emp (emp_no)
);
CREATE TABLE salaries (
  emp_no INT NOT NULL,
  from_date DATE NOT NULL,
  to_date DATE NULL,
  amount INT NOT NULL,
  PRIMARY KEY (emp_no, from_date),
  FOREIGN KEY (emp_no) REFERENCES emp (emp_no)
);
CREATE TABLE titles (
  emp_no INT NOT NULL,
  from_date DATE NOT NULL,
  to_date DATE NULL,
  title VARCHAR(40) NOT NULL,
  PRIMARY KEY (emp_no, from_date),
  FOREIGN KEY (emp_no) REFERENCES emp (emp_no)
);
CREATE TABLE projects (
  proj_id INT PRIMARY KEY,
  proj_name VARCHAR(50) NOT NULL,
  dept_code CHAR(4) NOT NULL,
  lead_no INT NOT NULL,
  client VARCHAR(40) NULL,
  started DATE NOT NULL,
  deadline DATE NOT NULL,
  finished DATE NULL,
  status ENUM('planned', 'running', 'finished', 'cancelled') NOT NULL,
  FOREIGN KEY (dept_code) REFERENCES depts (dept_code),
  FOREIGN KEY (lead_no) REFERENCES emp (emp_no)
);
CREATE TABLE assignments (
  emp_no INT NOT NULL,
  proj_id INT NOT NULL,
  role ENUM('developer', 'analyst', 'tester', 'designer') NOT NULL,
  pct TINYINT NOT NULL,
  PRIMARY KEY (emp_no, proj_id),
  FOREIGN KEY (emp_no) REFERENCES emp (emp_no),
  FOREIGN KEY (proj_id) REFERENCES projects (proj_id)
);
CREATE TABLE timesheets (
  ts_id INT PRIMARY KEY,
  emp_no INT NOT NULL,
  proj_id INT NOT NULL,
  work_day DATE NOT NULL,
  hrs DECIMAL(4, 2) NOT NULL,
  billable TINYINT(1) NOT NULL,
  FOREIGN KEY (emp_no) REFERENCES emp (emp_no),
  FOREIGN KEY (proj_id) REFERENCES projects (proj_id)
);
CREATE TABLE leave_requests (
  req_id INT PRIMARY KEY,
  emp_no INT NOT NULL,
  approver_no INT NULL,
  kind ENUM('vacation', 'sick', 'parental', 'unpaid') NOT NULL,
  first_day DATE NOT NULL,
  last_day DATE NOT NULL,
  submitted DATETIME NOT NULL,
  decision ENUM('pending', 'approved', 'rejected') NOT NULL,
  FOREIGN KEY (emp_no) REFERENCES emp (emp_no),
  FOREIGN KEY (approver_no) REFERENCES emp (emp_no)
);
"""

DEPTS = [
    ("ENG", "Engineering", "Leeds", 2400000.00),
    ("DATA", "Data Science", "Leeds", 1100000.00),
    ("SALE", "Sales", "Bristol", 900000.00),
    ("MKT", "Marketing", "Bristol", 650000.00),
    ("FIN", "Finance", "York", 500000.00),
    ("HR", "People Operations", "York", 400000.00),
    ("SUP", "Customer Support", "Cardiff", 700000.00),
]
TITLES = {
    "ENG": ["Software Engineer", "Senior Software Engineer", "Staff Engineer"],
    "DATA": ["Data Analyst", "Data Scientist", "Senior Data Scientist"],
    "SALE": ["Account Executive", "Senior Account Executive", "Sales Director"],
    "MKT": ["Marketing Specialist", "Content Lead", "Marketing Director"],
    "FIN": ["Accountant", "Senior Accountant", "Finance Director"],
    "HR": ["HR Generalist", "Recruiter", "People Director"],
    "SUP": ["Support Agent", "Senior Support Agent", "Support Manager"],
}
FIRST = ["Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Mia", "Noah", "Ruby", "Jack", "Zara", "Ravi", "Chloe"]
LAST = ["Patel", "Jones", "Evans", "Hughes", "Khan", "Walsh", "Price", "Murphy", "Clarke", "Singh", "Baker"]
CLIENTS = ["Northbank", "Hollis Foods", "Vantage Rail", "Elm Insurance", None, None]
PROJECT_WORDS = ["Atlas", "Beacon", "Comet", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper"]
PROJECT_KINDS = ["Migration", "Portal", "Dashboard", "Audit", "Campaign", "Rollout"]


def script(seed: int = 2028) -> str:
    """The database as one SQL script: schema, then every row (the same for the same ``seed``)."""
    rng = random.Random(seed)
    employees: list[tuple[object, ...]] = []
    salaries: list[tuple[object, ...]] = []
    titles: list[tuple[object, ...]] = []
    heads: dict[str, int] = {}
    for emp_no in range(1001, 1161):
        dept = DEPTS[(emp_no - 1001) % len(DEPTS)][0]
        manager = heads.get(dept)
        heads.setdefault(dept, emp_no)
        hired = dt.date(2010, 1, 4) + dt.timedelta(days=rng.randrange(0, 5400))
        left = hired + dt.timedelta(days=rng.randrange(400, 3000)) if rng.random() < 0.15 else None
        if left is not None and left > dt.date(2025, 10, 31):
            left = None
        employees.append(
            (
                emp_no,
                rng.choice(FIRST),
                rng.choice(LAST),
                rng.choice(["F", "F", "M", "M", "D"]),
                (hired - dt.timedelta(days=rng.randrange(8000, 16000))).isoformat(),
                hired.isoformat(),
                left.isoformat() if left else None,
                dept,
                manager,
                1 if rng.random() < 0.3 else 0,
            )
        )
        end = left or dt.date(2025, 11, 1)
        changes = sorted({hired} | {hired + dt.timedelta(days=rng.randrange(200, 5000)) for _ in range(3)})
        changes = [d for d in changes if d < end]
        amount = rng.randrange(28, 70) * 1000
        for i, since in enumerate(changes):
            until = changes[i + 1] if i + 1 < len(changes) else left
            salaries.append((emp_no, since.isoformat(), until.isoformat() if until else None, amount))
            amount += rng.randrange(1, 9) * 1000
        title_changes = changes[::2] if len(changes) > 2 else changes[:1]
        for i, since in enumerate(title_changes):
            until = title_changes[i + 1] if i + 1 < len(title_changes) else left
            level = min(i + (1 if manager is None else 0), 2)
            titles.append((emp_no, since.isoformat(), until.isoformat() if until else None, TITLES[dept][level]))
    projects: list[tuple[object, ...]] = []
    for proj_id in range(1, 37):
        dept = rng.choice(DEPTS)[0]
        members = [e for e in employees if e[7] == dept]
        started = dt.date(2022, 1, 3) + dt.timedelta(days=rng.randrange(0, 1450))
        deadline = started + dt.timedelta(days=rng.randrange(60, 400))
        if started > dt.date(2025, 9, 1):
            status, finished = "planned", None
        else:
            status = rng.choice(["running", "finished", "finished", "cancelled"])
            finished = (
                min(started + dt.timedelta(days=rng.randrange(50, 500)), dt.date(2025, 10, 30))
                if status == "finished"
                else None
            )
        projects.append(
            (
                proj_id,
                f"{PROJECT_WORDS[proj_id % len(PROJECT_WORDS)]} {PROJECT_KINDS[proj_id % len(PROJECT_KINDS)]} {proj_id}",
                dept,
                rng.choice(members)[0],
                rng.choice(CLIENTS),
                started.isoformat(),
                deadline.isoformat(),
                finished.isoformat() if finished else None,
                status,
            )
        )
    assignments: list[tuple[object, ...]] = []
    for project in projects:
        for member in rng.sample(employees, rng.randrange(3, 10)):
            role = rng.choice(["developer", "developer", "analyst", "tester", "designer"])
            assignments.append((member[0], project[0], role, rng.choice([10, 20, 25, 50, 100])))
    timesheets: list[tuple[object, ...]] = []
    for emp_no, proj_id, _, _ in assignments:
        project = projects[int(str(proj_id)) - 1]
        if project[8] == "planned":
            continue
        first = dt.date.fromisoformat(str(project[5]))
        for _ in range(rng.randrange(2, 14)):
            day = first + dt.timedelta(days=rng.randrange(0, 300))
            if day > dt.date(2025, 10, 31):
                continue
            hours = rng.choice([1.5, 2.0, 3.5, 4.0, 6.0, 7.5, 8.0])
            timesheets.append((len(timesheets) + 1, emp_no, proj_id, day.isoformat(), hours, int(rng.random() < 0.7)))
    leave: list[tuple[object, ...]] = []
    for req_id in range(1, 421):
        employee = rng.choice(employees)
        first_day = dt.date(2023, 1, 2) + dt.timedelta(days=rng.randrange(0, 1030))
        kind = rng.choice(["vacation"] * 6 + ["sick"] * 3 + ["parental", "unpaid"])
        last_day = first_day + dt.timedelta(days=rng.randrange(0, 15 if kind != "parental" else 90))
        submitted = dt.datetime.combine(
            first_day - dt.timedelta(days=rng.randrange(1, 40) if kind != "sick" else 0), dt.time(8, 0)
        ) + dt.timedelta(minutes=rng.randrange(0, 600))
        decision = "pending" if first_day > dt.date(2025, 10, 15) else rng.choice(["approved"] * 5 + ["rejected"])
        approver = employee[8] if decision != "pending" else None
        leave.append(
            (
                req_id,
                employee[0],
                approver,
                kind,
                first_day.isoformat(),
                last_day.isoformat(),
                submitted.isoformat(sep=" "),
                decision,
            )
        )
    return (
        SCHEMA
        + insert_statement("depts", DEPTS)
        + insert_statement("emp", employees)
        + insert_statement("salaries", salaries)
        + insert_statement("titles", titles)
        + insert_statement("projects", projects)
        + insert_statement("assignments", assignments)
        + insert_statement("timesheets", timesheets)
        + insert_statement("leave_requests", leave)
    )


if __name__ == "__main__":
    print(script())
