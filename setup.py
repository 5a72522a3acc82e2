"""berka-stream: a real-time Dagster pipeline for the Berka bank transactions."""

from setuptools import find_packages, setup

# Direct dependencies. Every transitive version is locked in constraints.txt (used by
# `make bootstrap`): unpinned, pip resolves the dagster integration libraries to 2021 releases.
DAGSTER = "1.13.27"
DAGSTER_LIBS = "0.29.27"
SPARK = "4.2.0"  # must match the Spark connector jars in jvm/spark/pom.xml

setup(
    name="berka_stream",
    version="0.1.0",
    description="Kafka -> Spark -> Hive pipeline over the Berka bank data set, run by Dagster",
    packages=find_packages(exclude=["berka_assets_tests*", "bench*"]),
    package_data={"berka_stack": ["*.sql"], "berka_core": ["messages/*.json"]},
    python_requires=">=3.11,<3.13",
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-graphql=={DAGSTER}",
        f"dagster-dg-cli=={DAGSTER}",
        f"dagster-pyspark=={DAGSTER_LIBS}",
        f"dagster-aws=={DAGSTER_LIBS}",
        f"dagster-mysql=={DAGSTER_LIBS}",
        f"pyspark[connect]=={SPARK}",
        "pandas>=2.2,<3",  # pyspark 4.2 does not support pandas 3 yet
        "pyarrow==26.0.1",  # also the producer's columnar encoder (pyspark[connect] needs it)
        "numpy==2.4.6",  # the producer's seen-trans_id bitmap (np.bitwise_count: numpy>=2)
        "confluent-kafka==2.16.1",
        "PyHive==0.7.0",
        "thrift==0.25.0",
        "thrift-sasl==0.4.3",
        "pure-sasl==0.6.2",
        "PyMySQL==1.2.4",
        "boto3==1.44.8",
        "moto[server]==5.2.5",  # the local S3-compatible server of the embedded stack
        "jsonschema==4.26.0",
        "matplotlib==3.11.2",
        "psutil==7.2.2",  # process handling of the stack manager and dev launcher (Linux, macOS)
        "pydantic-settings==2.16.3",  # berka_core/config.py: settings from the environment
        "python-dotenv==1.2.4",  # the secrets file, read as dagster reads .env
    ],
    extras_require={"dev": ["pytest==9.2.0", "ruff==0.17.6", "selenium==4.51.0",
                            "pytest-timeout==2.4.0", "import-linter==2.3",
                            # a second Delta writer: simulates thousands of triggers' commits
                            "deltalake==1.6.6"]},
    entry_points={
        "console_scripts": [
            "berka-stack=berka_stack.cli:main",
            "berka-demo=berka_stack.demo:main",
            "berka-generate=berka_core.dataset.generate_cli:main",
            "berka-replay=berka_assets.replay_cli:main",
            "berka-upload=berka_assets.resources.berka_source:main",
            "berka-dev=berka_stack.dev:main",
        ]
    },
)
