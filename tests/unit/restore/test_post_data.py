"""Dividing a post-data part by table: which entries a data part may build as soon as its rows are in."""

from __future__ import annotations

from pathlib import Path

from tasks.restore.post_data import PostData, post_data_entries, use_list

LISTING = """;
; Archive created at 2026-12-03 12:39:42 UTC
;
2495; 2606 16403 CONSTRAINT public users pk_users dbops
2496; 1259 16608 INDEX public ix_audit_logs_created_at dbops
2497; 1259 16609 INDEX public ix_parent_day dbops
2498; 1259 16610 INDEX public Ix_Odd dbops
2529; 2606 16597 FK CONSTRAINT public audit_logs fk_audit_logs_actor_id_users dbops
2530; 2620 16700 TRIGGER public users users_touch dbops
"""

SCRIPT = '''--
-- TOC entry 2495 (class 2606 OID 16403)
-- Name: users pk_users; Type: CONSTRAINT; Schema: public; Owner: dbops
-- Data Pos: 0
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT pk_users PRIMARY KEY (id);


--
-- TOC entry 2496 (class 1259 OID 16608)
-- Name: ix_audit_logs_created_at; Type: INDEX; Schema: public; Owner: dbops
--

CREATE INDEX ix_audit_logs_created_at ON public.audit_logs USING btree (created_at);


--
-- TOC entry 2497 (class 1259 OID 16609)
-- Name: ix_parent_day; Type: INDEX; Schema: public; Owner: dbops
--

CREATE INDEX ix_parent_day ON ONLY public.parent USING btree (day);


--
-- TOC entry 2498 (class 1259 OID 16610)
-- Name: Ix_Odd; Type: INDEX; Schema: public; Owner: dbops
--

CREATE UNIQUE INDEX "Ix_Odd" ON "Odd Schema"."Mixed ""Case""" USING btree (a);


--
-- TOC entry 2529 (class 2606 OID 16597)
-- Dependencies: 2495
-- Name: audit_logs fk_audit_logs_actor_id_users; Type: FK CONSTRAINT; Schema: public; Owner: dbops
--

ALTER TABLE ONLY public.audit_logs
    ADD CONSTRAINT fk_audit_logs_actor_id_users FOREIGN KEY (actor_id) REFERENCES public.users(id);
'''


def test_indexes_and_keys_are_found_on_their_tables_and_everything_else_is_kept_for_later() -> None:
    tables = {entry.dump_id: entry.table for entry in post_data_entries(LISTING, SCRIPT)}

    assert tables == {
        2495: ("public", "users"),
        2496: ("public", "audit_logs"),
        2497: None,  # a partitioned table's index waits for every partition
        2498: ("Odd Schema", 'Mixed "Case"'),
        2529: None,  # a foreign key waits for both tables and the key it references
        2530: None,  # listed but not in the script as an index or key: kept, never dropped
    }


def test_a_part_takes_only_its_own_tables_entries_and_the_rest_are_left_for_the_last_run(
    tmp_path: Path,
) -> None:
    post_data = PostData(post_data_entries(LISTING, SCRIPT))

    taken = post_data.take(["public.users", "public.universities"])

    assert [entry.dump_id for entry in taken] == [2495]
    assert post_data.take(["public.users"]) == []
    rest = use_list(post_data.rest(), tmp_path / "rest.list")
    assert rest.read_text().splitlines() == ["2496;", "2497;", "2498;", "2529;", "2530;"]
