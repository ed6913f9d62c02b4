import pytest

from wdt_kingdee_assets.mapping import MappingConfigError, MisDeliveryMapping, load_mapping


def mapping_file(tmp_path, text):
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_code_table_is_read_relative_to_the_mapping_file(tmp_path):
    (tmp_path / "codes.csv").write_text(
        "\ufeffspec_no,material_number\n6901,01.0001\nMAT-2,01.0002\n", encoding="utf-8"
    )
    config = load_mapping(mapping_file(tmp_path, "materials:\n  table: codes.csv\n"))
    assert config.materials.from_table("6901") == "01.0001"
    assert config.materials.from_table("nope") is None
    assert config.materials.fallback("nope") == "nope"


def test_a_yaml_code_table_and_hold_for_unmapped_codes(tmp_path):
    (tmp_path / "codes.yaml").write_text("'0012': '01.0012'\n", encoding="utf-8")
    config = load_mapping(
        mapping_file(tmp_path, "materials:\n  table: codes.yaml\n  unmapped: hold\n")
    )
    assert config.materials.from_table("0012") == "01.0012"  # leading zeros kept
    assert config.materials.fallback("0013") is None


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("spec_no,number\nA,1\n", "spec_no, material_number"),
        ("spec_no,material_number\nA,1\nA,2\n", "row 3: spec_no A is mapped twice"),
        ("spec_no,material_number\nA,\n", "row 2"),
    ],
)
def test_a_bad_code_table_is_refused_naming_the_row(tmp_path, table, named):
    (tmp_path / "codes.csv").write_text(table, encoding="utf-8")
    with pytest.raises(MappingConfigError, match="materials") as refused:
        load_mapping(mapping_file(tmp_path, "materials:\n  table: codes.csv\n"))
    assert named in str(refused.value)


def test_an_unquoted_yaml_code_is_refused_before_it_loses_its_zeros(tmp_path):
    (tmp_path / "codes.yaml").write_text("'0012': 01.0012\n", encoding="utf-8")
    with pytest.raises(MappingConfigError, match="quote every code"):
        load_mapping(mapping_file(tmp_path, "materials:\n  table: codes.yaml\n"))


def test_a_missing_code_table_is_named(tmp_path):
    with pytest.raises(MappingConfigError, match=r"cannot read .*absent\.csv"):
        load_mapping(mapping_file(tmp_path, "materials:\n  table: absent.csv\n"))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("header_fields:\n  Workshop: x\n", "header_fields"),
        ("entry_fields:\n  F_PAEZ_Line: '{nope}'\n", "nope"),
        ("header_fields:\n  F_PAEZ_W: '{spec_no}'\n", "spec_no"),
        ("materials:\n  by_field: FNumber\n", "by_field"),
        ("bins:\n  CK001:\n    flex_field: X1\n", "flex_field"),
        ("units:\n  conversions:\n    - {wdt_unit: 箱, kingdee_unit: Pcs}\n", "factor"),
        ("warehouses:\n  CK001: {stock: ''}\n", "stock"),
    ],
)
def test_bad_code_maps_and_custom_fields_name_the_field(tmp_path, text, named):
    with pytest.raises(MappingConfigError, match=named):
        load_mapping(mapping_file(tmp_path, text))


def test_a_warehouse_may_name_its_own_department_and_owner():
    config = MisDeliveryMapping(
        warehouses={"CK001": "STK-A", "CK002": {"stock": "STK-B", "department": "BM9"}}
    )
    assert config.warehouses["CK001"].stock == "STK-A"
    assert config.warehouses["CK002"].department == "BM9"
    assert config.warehouses["CK002"].owner is None
