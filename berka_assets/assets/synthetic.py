"""A synthetic Berka set, generated on demand (the same as `berka-generate`)."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from berka_core.config import var_dir
from berka_core.dataset.generator import generate


class SyntheticBerkaConfig(dg.Config):
    scale: float = Field(default=0.1, description="1 = the real sizes (~1.06M transactions)")
    seed: int = Field(default=0, description="same seed, same bytes")
    out_dir: str | None = Field(
        default=None, description="default: var/generated/scale-<scale>-seed-<seed>"
    )


@dg.asset(
    key=dg.AssetKey(["files", "synthetic_berka"]),
    group_name="synthetic",
    kinds={"python", "csv"},
    description="All eight Berka files in the original format with the real data's shape, "
    "deterministic by seed. Point BERKA_DATA_DIR (or upload with berka-upload) at the folder "
    "to run the pipeline on it.",
)
def synthetic_berka(context: dg.AssetExecutionContext,
                    config: SyntheticBerkaConfig) -> dg.MaterializeResult:
    out = Path(config.out_dir or var_dir() / "generated" /
               f"scale-{config.scale:g}-seed-{config.seed}")
    result = generate(out, scale=config.scale, seed=config.seed)
    context.log.info(f"generated {result.rows['trans']:,} transactions in {out} "
                     f"({result.trans_rows_per_second:,.0f} rows/s)")
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(out)),
        "rows": dg.MetadataValue.json(result.rows),
        "dagster/row_count": result.rows["trans"],
        "seconds": round(result.seconds, 2),
        "trans_rows_per_second": round(result.trans_rows_per_second),
    })
