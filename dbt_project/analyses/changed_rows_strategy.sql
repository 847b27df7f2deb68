{#-
    The SQL the `changed_rows` incremental strategy (macros/changed_rows.sql)
    runs after int_images' new rows are built, compiled for the target so it
    can be read, and checked with every model by the Redshift gate
    (tests/unit/test_redshift_gate.py).
-#}
{{ get_incremental_changed_rows_sql({
    'target_relation': ref('int_images'),
    'temp_relation': api.Relation.create(identifier='int_images__dbt_tmp'),
    'unique_key': 'upload_date',
    'row_key': 'image_id',
    'dest_columns': [
        {'name': 'image_id'},
        {'name': 'upload_date'},
        {'name': 'status'},
        {'name': 'derivatives_ready_at'},
    ],
}) }}
