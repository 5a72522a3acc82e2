"""docker/Dockerfile, the Dagster instance config of the image and the MySQL init scripts,
checked against what the application expects."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from berka_assets_tests.deploy.docker_files import (
    INSTANCE_YAML,
    MYSQL_INIT,
    REPO,
    Instruction,
    berka_names,
    config_defaults,
    dockerignore_patterns,
    env_instructions,
    final_stage,
    ignored,
    parse_dockerfile,
    service_environment,
    stages,
)

# ---- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_parser_reads_instructions() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # note\n  && y\n"
        "COPY --from=b --chmod=755 /s /d\nFROM c:2\nUSER 10\n"
    )
    assert [i.command for i in parsed] == ["FROM", "RUN", "COPY", "FROM", "USER"]
    assert parsed[1].arguments == "x && y"
    assert parsed[2].flags == {"from": "b", "chmod": "755"} and parsed[2].words() == ["/s", "/d"]
    assert [i.stage for i in parsed] == [0, 0, 0, 1, 1]
    with pytest.raises(AssertionError):
        parse_dockerfile("FROM a:1\nFRUM b\n")


def test_dockerfile_bases_are_pinned(dockerfile: list[Instruction]) -> None:
    images = stages(dockerfile)
    assert images[-1][0] == "python:3.11-slim-bookworm"
    assert images[0] == ("maven:3.9-eclipse-temurin-17", "jars")
    for image, _ in images:
        assert ":" in image and not image.endswith(":latest") and "$" not in image, image
    setup = (REPO / "setup.py").read_text()
    major, minor = re.search(r"python:(\d+)\.(\d+)", images[-1][0]).groups()
    low, high = re.search(r'python_requires=">=(\d+\.\d+),<(\d+\.\d+)"', setup).groups()
    version = (int(major), int(minor))
    assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split(".")))


def test_every_copy_source_is_in_the_build_context(dockerfile: list[Instruction]) -> None:
    aliases = [alias for _, alias in stages(dockerfile)]
    patterns = dockerignore_patterns()
    copies = [i for i in dockerfile if i.command in ("COPY", "ADD")]
    assert copies
    for instruction in copies:
        *sources, _destination = instruction.words()
        if "from" in instruction.flags:
            assert instruction.flags["from"] in aliases[: instruction.stage], instruction.line
            continue
        for source in sources:
            assert (REPO / source).exists(), f"line {instruction.line}: {source} is missing"
            assert not ignored(source, patterns), f"line {instruction.line}: {source} ignored"


def test_build_context_excludes_local_state_and_secrets() -> None:
    patterns = dockerignore_patterns()
    for path in (".env", "docker/.env", ".venv", "var/jars/spark/x.jar", ".git/config",
                 "berka_assets/__pycache__/config.cpython-311.pyc"):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    for path in ("berka_core/config.py", "constraints.txt", "jvm/spark/pom.xml"):
        assert not ignored(path, patterns), path


def test_python_packages_come_from_the_lock_file(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    pip = [i for i in runtime if i.command == "RUN" and "pip install" in i.arguments]
    assert len(pip) == 1
    assert re.search(r"pip install (.* )?-c constraints\.txt\b", pip[0].arguments)
    copied_before = [
        word
        for i in runtime
        if i.command == "COPY" and i.line < pip[0].line
        for word in i.words()[:-1]
    ]
    assert {"setup.py", "constraints.txt", "berka_core", "berka_assets", "berka_stack",
            "spark_streaming"} <= set(copied_before)


def test_runtime_runs_as_a_non_root_user(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    users = [i for i in runtime if i.command == "USER"]
    assert users, "the image runs as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(i.arguments for i in runtime if i.command == "RUN")
    assert re.search(rf"useradd .*\b{user}\b", created), f"user {user} is never created"
    last_run = max(i.line for i in runtime if i.command == "RUN")
    assert users[-1].line > last_run, "a RUN after USER would run as the non-root user"


def test_jars_are_where_the_application_looks_for_them(dockerfile: list[Instruction]) -> None:
    builder = [i for i in dockerfile if i.stage == 0 and i.command == "RUN"]
    maven = " ".join(i.arguments for i in builder)
    assert "mvn" in maven and "-f jvm/spark/pom.xml" in maven
    assert "dependency:copy-dependencies" in maven
    output = re.search(r"-DoutputDirectory=(\S+)", maven).group(1)
    # The marker prereqs.ensure_jars() accepts: the pom's sha256 hex digest, no newline.
    assert f"sha256sum jvm/spark/pom.xml | cut -d ' ' -f 1 | tr -d '\\n' > {output}/.complete" in (
        maven
    )
    copy = next(i for i in dockerfile if i.command == "COPY" and i.flags.get("from") == "jars")
    source, destination = copy.words()
    assert source == output
    var_dir = env_instructions(dockerfile)["BERKA_VAR_DIR"]
    assert destination == f"{var_dir}/jars/spark"  # = prereqs.jar_dir("spark")
    assert any(
        i.command == "COPY" and i.words() == ["jvm/spark/pom.xml", "./jvm/spark/pom.xml"]
        for i in final_stage(dockerfile)
    ), "prereqs fingerprints jvm/spark/pom.xml beside the package"


def test_marker_written_like_the_dockerfile_satisfies_prereqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from berka_stack import prereqs

    jars = tmp_path / "jars" / "spark"
    jars.mkdir(parents=True)
    (jars / "connector.jar").write_bytes(b"")
    digest = hashlib.sha256((REPO / "jvm" / "spark" / "pom.xml").read_bytes()).hexdigest()
    (jars / ".complete").write_text(digest)  # what `sha256sum | cut | tr -d '\n'` writes
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    monkeypatch.setattr(prereqs.shutil, "which", lambda _: None)  # no Maven: must not need it
    assert prereqs.jars("spark") == [jars / "connector.jar"]


def test_image_entrypoint_healthcheck_and_dagster_home(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    env = env_instructions(dockerfile)
    commands = {i.command: i for i in runtime}
    copies = {tuple(i.words()) for i in runtime if i.command == "COPY"}
    assert ("docker/entrypoint.py", "/usr/local/bin/berka-container") in copies
    assert commands["ENTRYPOINT"].words() == ["berka-container"]
    assert "berka-container" in commands["HEALTHCHECK"].arguments
    assert ("docker/dagster.yaml", f"{env['DAGSTER_HOME']}/dagster.yaml") in copies
    installs = " ".join(i.arguments for i in runtime if i.command == "RUN")
    assert "openjdk-17-jre-headless" in installs
    assert env["BERKA_SPARK_WAREHOUSE"] == "/data/warehouse"


# ---- Dagster instance -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load(INSTANCE_YAML.read_text())


def test_instance_config_validates_against_dagster_schema(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(INSTANCE_YAML, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert "mysql" in config["storage"]
    assert config["run_queue"]["max_concurrent_runs"] >= 1


def test_instance_storage_is_mysql_from_the_environment(
    instance_yaml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config
    from dagster._core.storage.config import mysql_config
    from dagster_mysql.utils import mysql_url_from_config

    database = instance_yaml["storage"]["mysql"]["mysql_db"]
    assert database["password"] == {"env": "BERKA_DAGSTER_MYSQL_PASSWORD"}
    assert database["hostname"] == {"env": "BERKA_MYSQL_HOST"}
    assert database["port"] == {"env": "BERKA_MYSQL_PORT"}
    monkeypatch.setenv("BERKA_DAGSTER_MYSQL_PASSWORD", "p@ss:w/rd")
    monkeypatch.setenv("BERKA_MYSQL_HOST", "mysql")
    monkeypatch.setenv("BERKA_MYSQL_PORT", "3306")
    resolved = process_config(mysql_config(), instance_yaml["storage"]["mysql"])
    assert resolved.success, resolved.errors
    url = mysql_url_from_config(resolved.value)
    assert url == "mysql+mysqlconnector://dagster:p%40ss%3Aw%2Frd@mysql:3306/dagster"


def test_instance_matches_the_repo_instance_apart_from_storage(
    instance_yaml: dict[str, Any],
) -> None:
    repo = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "run_queue" in repo
    storage_keys = {"storage", "run_storage", "event_log_storage", "schedule_storage"}
    for key, value in repo.items():
        if key not in storage_keys:
            assert instance_yaml.get(key) == value, f"docker/dagster.yaml differs in {key}"
    extra = set(instance_yaml) - set(repo) - storage_keys
    assert not extra, f"settings only the containers have: {extra}"


def test_dagster_mysql_user_matches_the_local_stack(instance_yaml: dict[str, Any]) -> None:
    database = instance_yaml["storage"]["mysql"]["mysql_db"]
    mariadb = (REPO / "berka_stack" / "mariadb.py").read_text()
    assert '("dagster", passwords["BERKA_DAGSTER_MYSQL_PASSWORD"], "dagster"' in mariadb
    assert database["username"] == "dagster" and database["db_name"] == "dagster"


# ---- MySQL initialisation ---------------------------------------------------------------------


def run_init_script(environment: dict[str, str]) -> str:
    script = MYSQL_INIT / "02-users.sh"
    program = (
        "set -eo pipefail\n"
        'docker_process_sql() { printf -- "-- args: %s\\n" "$*"; cat; }\n'
        f". {shlex.quote(str(script))}\n"
    )
    result = subprocess.run(
        ["bash", "-c", program], env={"PATH": os.environ["PATH"], **environment},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_mysql_init_creates_least_privilege_users(monkeypatch: pytest.MonkeyPatch) -> None:
    from berka_core.config import MySQLSettings
    from berka_stack.mariadb import APP_PRIVILEGES

    config_defaults(monkeypatch)  # a clean environment
    defaults = MySQLSettings()
    tricky = "it's\\a\"pa$$"
    sql = run_init_script({"BERKA_MYSQL_PASSWORD": tricky, "BERKA_METASTORE_PASSWORD": "m-pw",
                           "BERKA_DAGSTER_MYSQL_PASSWORD": "d-pw"})
    assert "-- args: --database=mysql" in sql
    quoted = tricky.replace("\\", "\\\\").replace("'", "''")
    assert f"'{defaults.user}'@'%' IDENTIFIED BY '{quoted}';" in sql
    assert f"'{defaults.metastore_user}'@'%' IDENTIFIED BY 'm-pw';" in sql
    assert "'dagster'@'%' IDENTIFIED BY 'd-pw';" in sql
    assert (f"GRANT {APP_PRIVILEGES} ON `{defaults.database}`.* TO '{defaults.user}'@'%';"
            in sql)
    assert (f"GRANT ALL PRIVILEGES ON `{defaults.metastore_database}`.* "
            f"TO '{defaults.metastore_user}'@'%';" in sql)
    assert "ON *.*" not in sql and "WITH GRANT OPTION" not in sql
    assert (f"CREATE DATABASE IF NOT EXISTS `{defaults.metastore_database}` "
            "CHARACTER SET latin1 COLLATE latin1_bin;" in sql)


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_mysql_init_follows_renamed_databases_and_refuses_missing_passwords() -> None:
    sql = run_init_script({"BERKA_MYSQL_PASSWORD": "a", "BERKA_METASTORE_PASSWORD": "b",
                           "BERKA_DAGSTER_MYSQL_PASSWORD": "c", "BERKA_MYSQL_DATABASE": "ref_db",
                           "BERKA_MYSQL_USER": "app"})
    assert "CREATE DATABASE IF NOT EXISTS `ref_db` CHARACTER SET utf8mb4;" in sql
    assert "ON `ref\\_db`.* TO 'app'@'%';" in sql  # _ is a wildcard in GRANT ... ON
    script = MYSQL_INIT / "02-users.sh"
    result = subprocess.run(
        ["bash", "-c", f"set -eo pipefail; docker_process_sql() {{ cat; }}; . {script}"],
        env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0 and "BERKA_MYSQL_PASSWORD is not set" in result.stderr


def test_mysql_init_files(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from berka_core.config import MySQLSettings

    files = sorted(path.name for path in MYSQL_INIT.iterdir())
    assert files == ["01-databases.sql", "02-users.sh"]
    # Not executable: the entrypoint then sources it, which provides docker_process_sql.
    assert not os.access(MYSQL_INIT / "02-users.sh", os.X_OK)
    sql = (MYSQL_INIT / "01-databases.sql").read_text()
    config_defaults(monkeypatch)  # a clean environment
    defaults = MySQLSettings()
    for database in (defaults.database, defaults.metastore_database, "dagster"):
        assert f"CREATE DATABASE IF NOT EXISTS `{database}`" in sql
    assert (f"`{defaults.metastore_database}` CHARACTER SET latin1 COLLATE latin1_bin;" in sql)
    assert "IDENTIFIED" not in sql and "GRANT" not in sql  # users come from 02-users.sh
    # Every variable the script reads is given to the mysql service.
    mysql_env = set(service_environment(services["mysql"]))
    assert berka_names((MYSQL_INIT / "02-users.sh").read_text()) <= mysql_env
    assert "./mysql-init:/docker-entrypoint-initdb.d:ro" in services["mysql"]["volumes"]
    assert service_environment(services["mysql"])["MYSQL_ROOT_HOST"] == "localhost"
