"""The processor as a Spark application: ``spark-submit`` runs this file.

    spark-submit --master yarn --deploy-mode client \\
      --conf spark.executor.instances=8 --conf spark.executor.cores=4 \\
      "$(python -c 'import advertisex.cli.spark_submit as m; print(m.__file__)')"

Configuration comes from ``advertisex.toml`` / ``ADVERTISEX_*`` as for the CLI (catalog
URI, warehouse and landing URLs, S3 settings); the master and executor sizing come
from spark-submit. Prints the batch accounting as JSON, like ``process --format json``.
"""

from __future__ import annotations


def main() -> None:
    import advertisex
    from advertisex.cli.output import Format
    from advertisex.cli.pipeline import print_accounting
    from advertisex.runners.spark import process_on_spark

    report = process_on_spark(advertisex.open(), master=None)  # spark-submit's master
    print_accounting(report, Format.json)


if __name__ == "__main__":
    main()
