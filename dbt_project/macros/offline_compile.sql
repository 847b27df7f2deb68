{#-
    dbt's is_incremental(), plus one escape hatch for compiling with no warehouse
    connection (the Redshift gate, tests/unit/test_redshift_gate.py): with the var
    `assume_incremental` set, the answer is that var instead of a catalog lookup,
    so both the first-build and the incremental SQL of every model can be
    compiled offline. Builds never set it and get dbt's own answer.
-#}
{% macro is_incremental() %}
    {%- set assumed = var('assume_incremental', none) -%}
    {%- if assumed is not none -%}
        {{ return(assumed in (true, 'true', 'True', 1, '1')) }}
    {%- endif -%}
    {{ return(dbt.is_incremental()) }}
{% endmacro %}
