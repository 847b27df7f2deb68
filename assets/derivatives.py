"""Derivatives: every configured size and format of each processed image, made by Spark."""

import dagster as dg

from assets.curated import IMAGE_METADATA
from assets.partitions import checked_upload_day, upload_days
from imagelake.batch.day_derivatives import DeriveParams, NotOnThisDay, images_to_derive
from imagelake.lake.layout import LayoutError
from imagelake.settings import get_settings
from orchestration.resources import CatalogResource, LakeResource
from orchestration.retries import STEP_RETRY
from orchestration.spark import SparkResource


class DerivativesConfig(dg.Config):
    """``force``: re-render every image of the day, even those whose derivatives exist.
    ``image_ids``: re-render only these images of the day (say, once a raw image is restored)."""

    force: bool = False
    image_ids: list[str] = []


@dg.asset(
    name="derivatives",
    partitions_def=upload_days,
    retry_policy=STEP_RETRY,
    deps=[dg.AssetDep(IMAGE_METADATA, partition_mapping=dg.AllPartitionMapping())],
    group_name="derivatives",
    kinds={"spark", "pillow", "parquet"},
    pool="lake_maintenance",
    description=(
        "Resized copies of each processed image of the upload date, `derivatives/<size>/<image_id>.<ext>` "
        "(sizes and formats from IMAGELAKE_DERIVATIVE_SIZES / _FORMATS), their manifest under "
        "`curated/derivatives/` and their keys in the catalog. Images already done are skipped."
    ),
)
def derivatives(
    context: dg.AssetExecutionContext,
    config: DerivativesConfig,
    spark: SparkResource,
    lake: LakeResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    settings = get_settings()
    try:
        params = DeriveParams(
            **lake.location(),
            dt=checked_upload_day(context),
            sizes=settings.derivative_sizes,
            formats=settings.derivative_formats,
            max_pixels=settings.max_image_pixels,
            run_id=context.run.run_id,
            catalog_table=catalog.table,
            catalog_endpoint=catalog.endpoint,
            force=config.force,
            image_ids=tuple(config.image_ids),
        )
        if params.image_ids:  # checked here, where a mistake fails once, not after Spark started
            images_to_derive(lake.lake(), params.dt, params.spec, True, params.image_ids)
    except (LayoutError, NotOnThisDay) as exc:
        raise dg.Failure(description=f"config image_ids: {exc}", allow_retries=False) from exc
    return spark.run(context, "derivatives", params.to_extras()).get_materialize_result()
