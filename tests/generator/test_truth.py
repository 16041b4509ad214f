from collections import Counter, defaultdict

from hub.generator import layout

from .conftest import PEOPLE, DataSet


def _file_keys(dataset: DataSet) -> dict[str, set[str]]:
    """Every person key as a connector would read it from each file."""
    hotel = {p["profileIdList"][0]["id"] for p in dataset.objects(layout.HOTEL_PROFILES)}
    return {
        layout.SOURCE_TAOBAO: {r["买家会员名"] for r in dataset.rows(layout.TAOBAO_ORDERS, "gbk")},
        layout.SOURCE_TAOBAO_MEMBERS: {r["ouid"] for r in dataset.rows(layout.TAOBAO_MEMBERS)},
        layout.SOURCE_DOUYIN_MEMBERS: {
            f"{r['shop_id']}:{r['open_id']}" for r in dataset.rows(layout.DOUYIN_MEMBERS)
        },
        layout.SOURCE_APP: {
            layout.app_truth_key(a["app_id"], a["openid"])
            for a in dataset.objects(layout.APP_ACCOUNTS)
        },
        layout.SOURCE_POS: {r["card_no"] for r in dataset.rows(layout.POS_MEMBERS)},
        layout.SOURCE_HOTEL: hotel,
    }


def test_truth_labels_exactly_the_keys_in_the_files(dataset: DataSet):
    truth: dict[str, set[str]] = defaultdict(set)
    for row in dataset.truth():
        truth[row["source"]].add(row["source_key"])
    assert set(truth) == set(layout.TRUTH_KEYS)
    assert truth == _file_keys(dataset)


def test_each_key_belongs_to_one_person(dataset: DataSet):
    pairs = Counter((r["source"], r["source_key"]) for r in dataset.truth())
    assert max(pairs.values()) == 1


def test_douyin_order_buyers_are_not_labelled(dataset: DataSet):
    assert "douyin" not in {r["source"] for r in dataset.truth()}
    assert dataset.summary.files[layout.DOUYIN_ORDERS] > 0


def test_nearly_everyone_is_labelled_and_ids_are_sequential(dataset: DataSet):
    people = dataset.sources_by_person()
    # Only people whose sole source is Douyin orders (no member key) are missing.
    assert 0.9 * PEOPLE < len(people) <= PEOPLE
    assert all(1 <= int(pid[1:]) <= PEOPLE for pid in people)


def test_people_overlap_across_sources(dataset: DataSet):
    counts = Counter(len(sources) for sources in dataset.sources_by_person().values())
    assert counts[1] > 0
    assert counts[2] > 0
    assert sum(n for k, n in counts.items() if k >= 3) > 0.1 * PEOPLE


def test_some_people_have_two_app_accounts_with_one_unionid(dataset: DataSet):
    person_of = dataset.person_of()
    unionids: dict[str, set[str]] = defaultdict(set)
    people: dict[str, set[str]] = defaultdict(set)
    for account in dataset.objects(layout.APP_ACCOUNTS):
        key = layout.app_truth_key(account["app_id"], account["openid"])
        person = person_of[(layout.SOURCE_APP, key)]
        people[person].add(account["app_id"])
        if account["unionid"]:
            unionids[person].add(account["unionid"])
    assert any(len(apps) >= 2 for apps in people.values())
    assert all(len(ids) == 1 for ids in unionids.values())


def test_renamed_taobao_buyers_have_two_nicks(dataset: DataSet):
    nicks = Counter(r["person_id"] for r in dataset.truth() if r["source"] == layout.SOURCE_TAOBAO)
    assert 2 in nicks.values()


def _phones_by_person(dataset: DataSet) -> dict[str, dict[str, set[str]]]:
    """person → source → plaintext phones that source holds for them."""
    person_of = dataset.person_of()
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in dataset.rows(layout.POS_MEMBERS):
        found[person_of[(layout.SOURCE_POS, row["card_no"])]]["pos"].add(row["phone"])
    for account in dataset.objects(layout.APP_ACCOUNTS):
        if account["phone"]:
            key = layout.app_truth_key(account["app_id"], account["openid"])
            found[person_of[(layout.SOURCE_APP, key)]]["app"].add(account["phone"])
    for profile in dataset.objects(layout.HOTEL_PROFILES):
        person = person_of[(layout.SOURCE_HOTEL, profile["profileIdList"][0]["id"])]
        phones = profile["profileDetails"].get("telephones", {}).get("telephoneInfo", [])
        for phone in phones:
            found[person]["hotel"].add(phone["telephone"]["phoneNumber"].removeprefix("+86 "))
    return found


def test_family_members_share_a_phone(dataset: DataSet):
    owners: dict[str, set[str]] = defaultdict(set)
    for person, by_source in _phones_by_person(dataset).items():
        for phones in by_source.values():
            for phone in phones:
                owners[phone].add(person)
    assert any(len(people) >= 2 for people in owners.values())


def test_some_people_changed_phone_between_pos_and_app(dataset: DataSet):
    changed = [
        person
        for person, by_source in _phones_by_person(dataset).items()
        if by_source["pos"] and by_source["app"] and not by_source["pos"] & by_source["app"]
    ]
    assert changed
