"""Pairwise evaluation on a small hand-built labelled set, Chinese and non-Chinese records."""

from __future__ import annotations

import re

import pytest

from hub.core.errors import ImportFormatError
from identity.evaluate import pairwise_metrics, run_evaluation
from identity.resolver import Resolver
from identity.synthetic import make_people

RECORDS = """source,source_id,given_name,surname,date_of_birth,phone,email,street,city,state,postcode
hotel,h1,Anna,Example,1985-03-02,+44 7700 900001,anna.example@example.com,1 Sample Road,Springfield,NSW,2000
crm,c1,Ana,Example,1985-03-02,,anna.example@example.com,1 Sample Rd,Springfield,NSW,2000
crm,c2,Example,Anna,1985-02-03,,,1 Sample Road,Springfield,NSW,2000
hotel,h2,Ben,Tester,1970-11-30,+44 7700 900002,,22 Demo Street,Shelbyville,VIC,3000
crm,c3,Benjamin,Tester,1970-11-30,+44 7700 900002,,22 Demo St,Shelbyville,VIC,3000
hotel,h3,Clara,Muster,1992-07-14,,clara@example.com,5 Trial Lane,Ogdenville,QLD,4000
crm,c4,Claire,Mustard,1961-01-01,,,9 Other Way,North Haverbrook,WA,6000
pos,p1,甲,测试,1990-01-01,13800000001,,,杭州,浙江,310000
hotel,h4,JIA,CESHI,1990-01-01,+86 138 0000 0001,,,Hangzhou,Zhejiang,310000
pos,p2,乙,样例,1988-05-05,13800000002,,,上海,上海,200000
"""
TRUTH = """source_id_a,source_id_b
h1,c1
h1,c2
c1,c2
h2,c3
p1,h4
"""
MAPPING = """[columns]
given_name = "given_name"
surname = "surname"
birthday = "date_of_birth"
phone = "phone"
email = "email"
street = "street"
city = "city"
province = "state"
postcode = "postcode"
[options]
region = "GB"
"""


def test_pairwise_metrics_count_pairs_after_clustering():
    result = pairwise_metrics([["a", "b", "c"], ["d"]], [("a", "b"), ("d", "e")])
    assert (result.pairs_found, result.pairs_true) == (3, 2)
    assert result.precision == pytest.approx(1 / 3)
    assert result.recall == pytest.approx(1 / 2)
    assert result.max_cluster == 3


def test_evaluation_on_a_mixed_labelled_set(tmp_path, keyring):
    (tmp_path / "r.csv").write_text(RECORDS, encoding="utf-8")
    (tmp_path / "t.csv").write_text(TRUTH, encoding="utf-8")
    (tmp_path / "m.toml").write_text(MAPPING, encoding="utf-8")
    result = run_evaluation(
        tmp_path / "r.csv", tmp_path / "t.csv", tmp_path / "m.toml", keyring=keyring
    )
    assert result.pairs_true == 5
    assert result.precision == 1.0
    assert result.recall >= 0.8
    line = result.format()
    assert re.fullmatch(
        r"precision=[\d.]+ recall=[\d.]+ f1=[\d.]+ pairs_true=5 pairs_found=\d+ clusters=\d+ "
        r"max_cluster=\d+ seconds=[\d.]+",
        line,
    )


def test_evaluation_recognises_common_headers_without_a_mapping(tmp_path, keyring):
    (tmp_path / "r.csv").write_text(RECORDS, encoding="utf-8")
    (tmp_path / "t.csv").write_text(TRUTH, encoding="utf-8")
    result = run_evaluation(tmp_path / "r.csv", tmp_path / "t.csv", keyring=keyring)
    assert result.precision == 1.0
    assert result.recall >= 0.6


def test_truth_file_without_the_pair_columns_is_rejected(tmp_path):
    (tmp_path / "r.csv").write_text(RECORDS, encoding="utf-8")
    (tmp_path / "t.csv").write_text("a,b\nh1,c1\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="source_id_a,source_id_b"):
        run_evaluation(tmp_path / "r.csv", tmp_path / "t.csv")


def test_fit_trains_m_and_u_but_keeps_the_configured_prior(keyring):
    records, _ = make_people(300, seed=4)
    base = Resolver(keyring=keyring)
    fitted = base.fit(records)
    assert fitted.model.prior == base.model.prior
    assert fitted.model.m != base.model.m
