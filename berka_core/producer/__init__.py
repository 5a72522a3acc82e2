"""The S3 replay producer: Berka transactions from a folder or S3 to Kafka at a live pace.

    options.py   ReplayOptions: every option, shared by the Dagster job (ReplayConfig) and the CLI
    pacing.py    pure schedules (rate with jitter, historical with speed-up, full speed)
    encoding.py  record -> message bytes (the contract of messages/trans_message), DLQ message
    position.py  the durable resume position (MySQL table producer_position)
    replay.py    the run: read, pace, produce, track deliveries, resend, stop, report; the
                 API (run_replay, ReplayResult, StopRequest...); its parts:
                 reading, senders, delivery, session, broker, results, stopping, interfaces
    cli.py       `berka-replay`
The job is berka_assets.jobs.replay.s3_replay_job.
"""
