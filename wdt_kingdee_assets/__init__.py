"""wdt-kingdee-assets: 旺店通·旗舰版 production stock-outs → 金蝶云星空 其他出库单, as Dagster assets."""
