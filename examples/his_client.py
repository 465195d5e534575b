"""A hospital information system (HIS) settling one visit through yidi's generated gRPC stubs.

This is all an integrator needs: the stubs generated from ``protos/`` (here the Python ones,
``yidi.settlement.v1``), the hospital's client certificate for mutual TLS (the node knows the
caller by it, and lets a hospital act only as itself), the national envelope on every call, a
message id (msgid) per mutating call, and the stable reason of a refusal. The flow mirrors the national
interface: 1101 VerifyPerson → 2201 RegisterVisit → 2204 UploadFeeItems → 2206 PreSettle →
2207 Settle.

Run it against the Beijing node of ``yidi demo --keep-running`` (the default address), where
the demo's first story has filed the Langfang retiree for Beijing, with the hospital's
certificate from the folder the demo prints:

    .venv/bin/yidi demo --keep-running --data-dir demo     # in one terminal
    .venv/bin/python examples/his_client.py --cert demo/certs/institutions/H11010100001.pem \
        --key demo/certs/institutions/H11010100001.key --ca demo/certs/ca.pem   # in another

(``--insecure`` instead, against ``yidi demo --insecure``.)

Exit code 0 when the visit settled and the refusal read as expected.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from google.type.date_pb2 import Date
from grpc_status import rpc_status

from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import fee_item_pb2, person_pb2, visit_pb2

CHINA = timezone(timedelta(hours=8))
DEADLINE_S = 10.0
ANSWER_LOST = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
Response = TypeVar("Response")

# The bill: the worked example's diabetes drugs (national code, quantity, unit price in yuan).
BILL = (("XA10BFA022A001010100001", "1", "32.52"), ("XA10BXR023A001010100002", "1", "31.77"))


class MessageIds:
    """msgid = the institution's 12-character code + yyyyMMddHHmmss + a 4-digit sequence (30 characters)."""

    def __init__(self, fixmedins_code: str) -> None:
        self._code = fixmedins_code
        self._sequence = itertools.count(random.randrange(10_000))

    def next(self) -> str:
        return f"{self._code}{datetime.now(CHINA):%Y%m%d%H%M%S}{next(self._sequence) % 10_000:04d}"


def reason_of(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The refusal's stable reason and metadata, from the google.rpc.ErrorInfo in the status details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return error.code().name, {}  # type: ignore[attr-defined]  # no yidi reason: a transport failure


def with_retries(call: Callable[..., Response], request: object, attempts: int = 3) -> Response:
    """Send a mutating request, resending the SAME request (same request_id) when the answer is lost.

    The node applies a request_id once: a resend after a timeout returns the original answer,
    never a second effect. A new request_id would be a new settlement.
    """
    for _ in range(attempts - 1):
        try:
            return call(request, timeout=DEADLINE_S)
        except grpc.RpcError as error:
            if error.code() not in ANSWER_LOST:  # type: ignore[attr-defined]
                raise  # a refusal: resending would not change it
            print(f"  no answer ({error.code().name}); resending the same request_id")  # type: ignore[attr-defined]
    return call(request, timeout=DEADLINE_S)


def fen(quantity: str, price: str) -> int:
    """Quantity times unit price, rounded half up to the fen, as the wire's integer fen."""
    return int((Decimal(quantity) * Decimal(price)).quantize(Decimal("0.01"), ROUND_HALF_UP) * 100)


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """Mutual TLS: the hospital's certificate and key, and the CA that signed the node's certificate."""
    if args.insecure:
        return grpc.insecure_channel(args.address)  # a development node run insecure, nothing else
    if not (args.cert and args.key and args.ca):
        sys.exit("give --cert, --key and --ca (the hospital's certificate, its key, the CA), or --insecure")
    with open(args.cert, "rb") as cert, open(args.key, "rb") as key, open(args.ca, "rb") as ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca.read(), private_key=key.read(), certificate_chain=cert.read()
        )
    return grpc.secure_channel(args.address, credentials)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--address", default="127.0.0.1:50101", help="the hospital's node (yidi demo: Beijing)"
    )
    parser.add_argument("--institution", default="H11010100001", help="this hospital's fixmedins_code")
    parser.add_argument("--certno", default="131000195402270170", help="the patient's ID card number")
    parser.add_argument("--insured-region", default="131000", help="the patient's insured region")
    parser.add_argument(
        "--refused-certno",
        default="131000198309180289",
        help="a patient whose contributions are interrupted, to show a refusal",
    )
    parser.add_argument(
        "--cert", default=os.environ.get("YIDI_CLIENT_CERT"), help="the hospital's certificate (PEM)"
    )
    parser.add_argument("--key", default=os.environ.get("YIDI_CLIENT_KEY"), help="its private key (PEM)")
    parser.add_argument("--ca", default=os.environ.get("YIDI_CLIENT_CA"), help="the federation's CA (PEM)")
    parser.add_argument("--insecure", action="store_true", help="plaintext, for a node run insecure")
    args = parser.parse_args()

    now = datetime.now(CHINA)
    today = Date(year=now.year, month=now.month, day=now.day)
    ids = MessageIds(args.institution)
    card = person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no=args.certno)  # 02: resident ID card

    def envelope(insured: str = "") -> settlement_pb2.Envelope:
        # The national envelope (公共报文): who calls, where, for which insured region.
        return settlement_pb2.Envelope(
            fixmedins_code=args.institution,
            mdtrtarea_admvs=args.institution[1:7],  # an institution code's digits 2-7 are its region
            insuplc_admdvs=insured,
            opter_type="1",
            opter="window-01",
            inf_time=timestamp(now),
        )

    with open_channel(args) as channel:
        his = settlement_service_pb2_grpc.SettlementServiceStub(channel)

        # 1101: who is the patient, and may they settle here today for chronic-disease outpatient care?
        person = his.VerifyPerson(
            settlement_service_pb2.VerifyPersonRequest(
                envelope=envelope(),
                credential=card,
                insuplc_admdvs=args.insured_region,
                service_date=today,
                med_type="14",
                chronic_disease="M01600",  # the chronic disease the outpatient care is for
            ),
            timeout=DEADLINE_S,
        ).person
        print(f"patient {person.psn_name_masked} {person.certno_masked}, psn_no {person.psn_no}")

        # 2201: register the visit; the answer carries the visit id (mdtrt_id).
        facts = visit_pb2.VisitFacts(
            med_type="14",
            service_date=today,
            institution_level="3",
            diagnoses=["E11.900"],
            chronic_disease="M01600",
            fixmedins_code=args.institution,
            mdtrtarea_admvs=args.institution[1:7],
        )
        visit = with_retries(
            his.RegisterVisit,
            settlement_service_pb2.RegisterVisitRequest(
                request_id=ids.next(),
                envelope=envelope(person.insuplc_admdvs),
                psn_no=person.psn_no,
                insutype=person.insutype,
                credential=card,
                facts=facts,
                ipt_otp_no=f"MZ{now:%Y%m%d%H%M%S%f}",
                begin_time=timestamp(now),
            ),
        ).visit
        print(f"visit {visit.mdtrt_id}")

        # 2204: upload the fee lines; amounts travel as integer fen.
        lines = [
            fee_item_pb2.FeeItem(
                feedetl_sn=f"{number:04d}",
                med_list_codg=code,
                cnt=quantity,
                pric=price,
                det_item_fee_sumamt_fen=fen(quantity, price),
                fee_ocur_time=timestamp(now),
            )
            for number, (code, quantity, price) in enumerate(BILL, start=1)
        ]
        total_fen = sum(line.det_item_fee_sumamt_fen for line in lines)
        uploaded = with_retries(
            his.UploadFeeItems,
            settlement_service_pb2.UploadFeeItemsRequest(
                request_id=ids.next(),
                envelope=envelope(person.insuplc_admdvs),
                mdtrt_id=visit.mdtrt_id,
                items=lines,
            ),
        )
        for item in uploaded.results:
            print(f"  line {item.feedetl_sn} {item.med_list_codg}: class {item.chrgitm_lv or 'not listed'}")

        # 2206: what the patient would pay; changes nothing.
        estimate = his.PreSettle(
            settlement_service_pb2.PreSettleRequest(
                envelope=envelope(person.insuplc_admdvs), mdtrt_id=visit.mdtrt_id, medfee_sumamt_fen=total_fen
            ),
            timeout=DEADLINE_S,
        ).result
        print(f"pre-settlement: the patient would pay {estimate.amounts.psn_part_amt_fen / 100:.2f}")

        # 2207: settle. Keep the request: if the answer is lost, send the very same request again.
        settle = settlement_service_pb2.SettleRequest(
            request_id=ids.next(),
            envelope=envelope(person.insuplc_admdvs),
            mdtrt_id=visit.mdtrt_id,
            medfee_sumamt_fen=total_fen,
        )
        settlement = with_retries(his.Settle, settle).settlement
        amounts = settlement.result.amounts
        print(
            f"settled {settlement.setl_id} (medins_setl_id {settlement.medins_setl_id}): "
            f"fund {amounts.fund_pay_sumamt_fen / 100:.2f}, account {amounts.acct_pay_fen / 100:.2f}, "
            f"cash {amounts.psn_cash_pay_fen / 100:.2f}"
        )
        again = his.Settle(settle, timeout=DEADLINE_S).settlement  # e.g. after a timeout
        print(f"the same request_id sent again: setl_id {again.setl_id} (same settlement, no second effect)")

        # A refusal: the reason is a stable code the clerk can act on, in google.rpc.ErrorInfo.
        refused_card = person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no=args.refused_certno)
        try:
            his.VerifyPerson(
                settlement_service_pb2.VerifyPersonRequest(
                    envelope=envelope(),
                    credential=refused_card,
                    insuplc_admdvs=args.insured_region,
                    service_date=today,
                    med_type="21",  # an admission
                ),
                timeout=DEADLINE_S,
            )
        except grpc.RpcError as error:
            reason, metadata = reason_of(error)
            print(f"second patient refused: {reason} {metadata}: {error.details()}")  # type: ignore[attr-defined]
        else:
            print("second patient accepted: no refusal to show")
    return 0 if again.setl_id == settlement.setl_id else 1


if __name__ == "__main__":
    sys.exit(main())
