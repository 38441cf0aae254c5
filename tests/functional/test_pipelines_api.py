import pytest


def test_create_fills_defaults_and_get_list(api):
    r = api.post("/pipelines", {"name": "Web 800", "format": "webp", "width": 800})
    assert r.status_code == 201
    p = r.data["pipeline"]
    assert p["fit"] == "contain" and p["quality"] == 85 and p["compression"] == 70
    assert p["background"] == "#ffffff" and p["keep_metadata"] is False and p["upscale"] is False
    assert p["created_at"].endswith("Z") and p["id"]
    assert api.get(f"/pipelines/{p['id']}").data["pipeline"] == p
    assert [x["id"] for x in api.get("/pipelines").data["pipelines"]] == [p["id"]]


@pytest.mark.parametrize("body, fragment", [
    ({"format": "jpeg"}, "name is required"),
    ({"name": "x"}, "format is required"),
    ({"name": "x", "format": "gif"}, "format must be one of"),
    ({"name": "x", "format": "png", "width": 0}, "width must be between 1 and 16384"),
    ({"name": "x", "format": "png", "width": "800"}, "width must be an integer"),
    ({"name": "x", "format": "png", "width": True}, "width must be an integer"),
    ({"name": "x", "format": "png", "quality": 101}, "quality must be between 1 and 100"),
    ({"name": "x", "format": "png", "compression": -1}, "compression must be between 0 and 100"),
    ({"name": "x", "format": "png", "fit": "stretch"}, "fit must be one of"),
    ({"name": "x", "format": "png", "fit": "cover", "width": 10}, "needs both width and height"),
    ({"name": "x", "format": "png", "background": "white"}, "background must be a hex colour"),
    ({"name": "x", "format": "png", "keep_metadata": "yes"}, "keep_metadata must be true or false"),
    ({"name": "x", "format": "png", "colour": 1}, "unknown field(s): colour"),
    ({"name": "", "format": "png"}, "name must not be empty"),
    ({"name": "x" * 101, "format": "png"}, "at most 100 characters"),
    ([], "must be a JSON object"),
])
def test_every_field_is_validated(api, body, fragment):
    r = api.post("/pipelines", body)
    assert r.status_code == 400
    assert r.data["Code"] == "BadRequestError"
    assert fragment in r.data["Message"]
    assert api.get("/pipelines").data["pipelines"] == []


def test_malformed_json_names_the_problem(api):
    r = api.post("/pipelines", raw=b'{"name": "x",')
    assert r.status_code == 400 and "not valid JSON" in r.data["Message"]


def test_names_are_unique_per_owner_ignoring_case(api):
    assert api.post("/pipelines", {"name": "Web", "format": "png"}).status_code == 201
    r = api.post("/pipelines", {"name": " web ", "format": "jpeg"})
    assert r.status_code == 409 and "already exists" in r.data["Message"]
    # another owner may use the same name
    assert api.post("/pipelines", {"name": "Web", "format": "png"}, token="token-bob").status_code == 201


def test_put_replaces_and_rename_frees_the_old_name(api):
    p = api.post("/pipelines", {"name": "A", "format": "png", "width": 10}).data["pipeline"]
    other = api.post("/pipelines", {"name": "B", "format": "png"}).data["pipeline"]
    r = api.put(f"/pipelines/{p['id']}", {"name": "C", "format": "jpeg"})
    assert r.status_code == 200
    assert r.data["pipeline"]["width"] is None and r.data["pipeline"]["format"] == "jpeg"
    assert r.data["pipeline"]["created_at"] == p["created_at"]
    assert api.post("/pipelines", {"name": "A", "format": "png"}).status_code == 201
    clash = api.put(f"/pipelines/{p['id']}", {"name": "b", "format": "png"})
    assert clash.status_code == 409
    assert api.get(f"/pipelines/{other['id']}").data["pipeline"]["name"] == "B"
    # a client may PUT back what it got
    got = api.get(f"/pipelines/{p['id']}").data["pipeline"]
    assert api.put(f"/pipelines/{p['id']}", got).status_code == 200


def test_delete_then_404_and_name_reusable(api):
    p = api.post("/pipelines", {"name": "A", "format": "png"}).data["pipeline"]
    r = api.delete(f"/pipelines/{p['id']}")
    assert r.status_code == 204
    assert api.get(f"/pipelines/{p['id']}").status_code == 404
    assert api.delete(f"/pipelines/{p['id']}").status_code == 404
    assert api.post("/pipelines", {"name": "A", "format": "png"}).status_code == 201


def test_other_owner_sees_404_everywhere(api):
    p = api.post("/pipelines", {"name": "A", "format": "png"}).data["pipeline"]
    for method, body in (("GET", None), ("PUT", {"name": "Z", "format": "png"}), ("DELETE", None)):
        r = api.call(method, f"/pipelines/{p['id']}", body, token="token-bob")
        assert r.status_code == 404, method
        assert r.data["Code"] == "NotFoundError"
    assert api.get("/pipelines", token="token-bob").data["pipelines"] == []
    assert api.get(f"/pipelines/{p['id']}").data["pipeline"]["name"] == "A"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_401_without_a_valid_token(api, token):
    for method, path in (("GET", "/pipelines"), ("POST", "/pipelines"), ("GET", "/pipelines/x"),
                         ("PUT", "/pipelines/x"), ("DELETE", "/pipelines/x")):
        r = api.call(method, path, {"name": "a", "format": "png"}, token=token)
        assert r.status_code == 401, (method, path)


def test_me_names_the_tokens_owner(api):
    assert api.get("/me").data == {"owner": "alice"}
    assert api.get("/me", token="token-bob").data == {"owner": "bob"}
    assert api.get("/me", token="nope").status_code == 401
