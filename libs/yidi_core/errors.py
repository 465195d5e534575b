"""Stable failure reasons and the one exception type that carries them.

Every refusal in yidi names a reason from ``domain/codes.md``. The reason is the contract
with integrators: its code never changes meaning, and its gRPC status code is fixed here so
that the core (which imports no gRPC) and the runtime interceptor agree on one table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reason:
    """One stable failure reason: its code, gRPC status name and clerk-facing messages."""

    code: str
    grpc_code: str
    message_en: str
    message_zh: str


def _reasons(*rows: tuple[str, str, str, str]) -> dict[str, Reason]:
    return {code: Reason(code, grpc, en, zh) for code, grpc, en, zh in rows}


REASONS: Mapping[str, Reason] = _reasons(
    (
        "INVALID_CODE",
        "INVALID_ARGUMENT",
        "A code or identifier is malformed or unknown.",
        "编码或标识格式错误或不存在",
    ),
    (
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "A field is missing or has a value out of range.",
        "字段缺失或取值超出范围",
    ),
    (
        "AMOUNT_MISMATCH",
        "INVALID_ARGUMENT",
        "A line amount disagrees with quantity × price.",
        "明细金额与数量×单价不符",
    ),
    ("INVALID_POLICY", "INVALID_ARGUMENT", "The insured-place policy is malformed.", "参保地政策配置不合法"),
    (
        "POLICY_LIMIT_EXCEEDED",
        "INVALID_ARGUMENT",
        "The insured-place policy lowers a ratio below the national limits, or pays unfiled care at no share.",
        "参保地政策超出国家规定：降低支付比例超过限度（长期异地人员不得降低）或未备案就医支付比例不合法",
    ),
    (
        "PERSON_NOT_FOUND",
        "NOT_FOUND",
        "No insured person with that ID at the insured place.",
        "参保地无此参保人员",
    ),
    ("NOT_FOUND", "NOT_FOUND", "The requested record does not exist.", "记录不存在"),
    (
        "CONTRIBUTION_INTERRUPTED",
        "FAILED_PRECONDITION",
        "Insurance is suspended for lack of contributions.",
        "参保人中断缴费，暂停待遇",
    ),
    (
        "CREDENTIAL_NOT_ACTIVATED",
        "FAILED_PRECONDITION",
        "The social security card or e-voucher is not activated.",
        "社保卡或医保电子凭证未激活",
    ),
    (
        "NOT_FILED",
        "FAILED_PRECONDITION",
        "No valid out-of-area filing for this region and date.",
        "未办理异地就医备案",
    ),
    (
        "FILING_EXPIRED",
        "FAILED_PRECONDITION",
        "The filing does not cover this date.",
        "异地就医备案已过期或未生效",
    ),
    (
        "FILING_PENDING_REVIEW",
        "FAILED_PRECONDITION",
        "The filing is waiting for manual review.",
        "异地就医备案待审核",
    ),
    (
        "INSTITUTION_NOT_NETWORKED",
        "FAILED_PRECONDITION",
        "The institution is not a networked designated institution.",
        "该机构未开通异地就医直接结算",
    ),
    (
        "SERVICE_NOT_ENABLED",
        "FAILED_PRECONDITION",
        "The institution has not opened this medical type or disease.",
        "该机构未开通此类异地就医结算服务",
    ),
    (
        "INSTITUTION_SUSPENDED",
        "UNAVAILABLE",
        "A suspension notice covers this institution now.",
        "该机构处于停机公告期间",
    ),
    (
        "NO_POLICY_RULE",
        "FAILED_PRECONDITION",
        "The insured policy has no rule for this visit.",
        "参保地政策无适用的支付规则",
    ),
    (
        "DUPLICATE_REQUEST",
        "ALREADY_EXISTS",
        "This request id was used with different content.",
        "报文ID重复且内容不同",
    ),
    (
        "ALREADY_SETTLED",
        "FAILED_PRECONDITION",
        "The visit is settled; reverse it first.",
        "该就诊已结算，请先撤销",
    ),
    (
        "INSURED_REGION_UNREACHABLE",
        "UNAVAILABLE",
        "The insured region did not answer; nothing was applied.",
        "参保地系统无响应，未产生结算",
    ),
    (
        "DATABASE_UNAVAILABLE",
        "UNAVAILABLE",
        "This node's database did not answer; resend the same request (it takes effect at most once).",
        "本节点数据库暂不可用，请以相同流水号重试",
    ),
    (
        "NODE_UNREACHABLE",
        "UNAVAILABLE",
        "Another node this answer depends on did not answer in time; retry later.",
        "上级或相关节点无响应，请稍后重试",
    ),
    (
        "RATE_LIMITED",
        "RESOURCE_EXHAUSTED",
        "A caller made too many calls; resend the same request after the retry delay.",
        "调用过于频繁，已被限流，请按提示的等待时间后以相同流水号重试",
    ),
    (
        "PERMISSION_DENIED_REGION",
        "PERMISSION_DENIED",
        "The caller acts outside its institution or region.",
        "越权操作：超出机构或区划范围",
    ),
    (
        "PERMISSION_DENIED_ROLE",
        "PERMISSION_DENIED",
        "The caller's role may not do this (operators review, suspend, import, clear and repair).",
        "越权操作：当前身份无此操作权限",
    ),
    (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        "The caller presented no valid certificate or token.",
        "身份认证失败：未提供有效证书或令牌",
    ),
    (
        "SIGNATURE_INVALID",
        "UNAUTHENTICATED",
        "The message's signature is missing or does not prove that the originating node sent it unchanged.",
        "报文签名缺失或校验失败：无法证明报文由发起节点发出且未被篡改",
    ),
    ("ALREADY_EXISTS", "ALREADY_EXISTS", "A record with that key already exists.", "记录已存在"),
    (
        "MATERIALS_REQUIRED",
        "INVALID_ARGUMENT",
        "The filing needs proof or a personal commitment the region does not waive.",
        "备案材料不全：需提供证明材料或个人承诺",
    ),
    (
        "FILING_STATE",
        "FAILED_PRECONDITION",
        "The filing's state does not allow this action.",
        "备案当前状态不允许此操作",
    ),
    (
        "FILING_CHANGE_RESTRICTED",
        "FAILED_PRECONDITION",
        "The insured region restricts changing this long-term filing yet.",
        "长期备案未满参保地规定期限，暂不能变更或取消",
    ),
    (
        "REVIEW_REQUIRED",
        "FAILED_PRECONDITION",
        "The region's rules now review this kind of application by hand; it was approved instantly.",
        "参保地规则现要求人工审核此类备案（原为即办秒批）",
    ),
    (
        "RECHECK_STATE",
        "FAILED_PRECONDITION",
        "The filing's recheck no longer waits for a decision: decided, superseded or closed.",
        "该备案的规则变更复核已处理、已被新规则取代或备案已终止，无需再决定",
    ),
    (
        "FILING_CONFLICT",
        "FAILED_PRECONDITION",
        "The person already has a filing for another treatment region in this period; change or cancel it.",
        "参保人在该期间已有其他就医地的备案，请先变更或取消原备案",
    ),
    (
        "TICKET_STATE",
        "FAILED_PRECONDITION",
        "The ticket does not await this party's action in its state.",
        "协同工单当前状态不允许该方操作",
    ),
    (
        "INSTITUTION_NOT_DESIGNATED",
        "FAILED_PRECONDITION",
        "Outpatient care here needs one of the person's designated institutions.",
        "该机构不是参保人选定的门诊定点机构",
    ),
    (
        "NO_CATALOGUE_VERSION",
        "NOT_FOUND",
        "No catalogue version is in force for that region and date.",
        "该地区该日期无生效的医保目录",
    ),
    (
        "NO_POLICY_VERSION",
        "NOT_FOUND",
        "No insured-place policy is in force for that region, insurance type and date.",
        "参保地该险种该日期无生效的待遇政策",
    ),
    (
        "CORRECTED",
        "FAILED_PRECONDITION",
        "This request was corrected (冲正) and will never take effect.",
        "该交易已冲正，不再生效",
    ),
    (
        "HOLD_VOIDED",
        "FAILED_PRECONDITION",
        "The insured place voided this settlement: it was not recorded in time. Settle again with a new msgid.",
        "参保地已撤销该结算的预占（超时未确认），请以新的报文ID重新结算",
    ),
    (
        "THIRD_PARTY_NOT_DECLARED",
        "FAILED_PRECONDITION",
        "An injury is paid only when the patient declares that no third party is liable for it.",
        "外伤就医须参保人承诺无第三方责任",
    ),
    (
        "BILLED_FOR_REIMBURSEMENT",
        "FAILED_PRECONDITION",
        "The visit's whole bill was uploaded for manual reimbursement; it no longer settles directly.",
        "该就诊已上传全额费用单据申请手工报销，不能再直接结算",
    ),
    (
        "ALREADY_REVERSED",
        "FAILED_PRECONDITION",
        "The settlement is already reversed.",
        "该结算已撤销",
    ),
    (
        "AUDIT_CASE_DECIDED",
        "FAILED_PRECONDITION",
        "The audit case is already decided; a decision is final.",
        "该大额协查案件已处理，处理结果不可更改",
    ),
    (
        "PERIOD_CLOSED",
        "FAILED_PRECONDITION",
        "The clearing period is closed; changes go to the next period.",
        "清算期已关闭，调整计入下一期",
    ),
    (
        "STATEMENT_STATE",
        "FAILED_PRECONDITION",
        "The statement's state does not allow this action.",
        "清算单当前状态不允许此操作",
    ),
    (
        "CONFIRMATION_OVERDUE",
        "FAILED_PRECONDITION",
        "The statement's confirmation days are over; the national node resolves it now.",
        "清算单确认期已过，由国家平台处理",
    ),
    (
        "ADVANCE_PROPOSAL_APPLIED",
        "FAILED_PRECONDITION",
        "The advance proposal was already applied; the advance changes through SetAdvance or TopUpAdvance now.",
        "该预付金测算方案已执行",
    ),
    (
        "NOT_IMPLEMENTED",
        "UNIMPLEMENTED",
        "This method is not available on this node yet.",
        "本节点暂不支持该接口",
    ),
    ("INTERNAL", "INTERNAL", "An unexpected error occurred; it has been logged.", "系统内部错误，已记录"),
)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """Names the offending field (a dotted path such as ``items[2].price``) and why."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """A refusal with a stable reason; the only exception the core raises on bad input.

    ``metadata`` names the record or value involved (never a personal ID number);
    ``violations`` lists the bad fields for input errors; ``retry_delay_s``, when set, is how
    long the caller should wait before sending the request again (``google.rpc.RetryInfo``).
    """

    reason_code: str
    message: str = ""
    violations: tuple[FieldViolation, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    retry_delay_s: float | None = None

    def __post_init__(self) -> None:
        if self.reason_code not in REASONS:
            raise ValueError(f"unknown failure reason {self.reason_code!r}")
        if not self.message:
            self.message = REASONS[self.reason_code].message_en
        Exception.__init__(self, f"{self.reason_code}: {self.message}")

    @property
    def reason(self) -> Reason:
        """The registered reason row (gRPC status name, bilingual messages)."""
        return REASONS[self.reason_code]

    def __str__(self) -> str:
        return f"{self.reason_code}: {self.message}"


@dataclass
class InvalidArgument(DomainError):
    """A field is missing, of the wrong type, or out of range."""

    reason_code: str = "INVALID_ARGUMENT"


@dataclass
class InvalidCode(DomainError):
    """A code or identifier breaks its national format or is not in its dictionary."""

    reason_code: str = "INVALID_CODE"


@dataclass
class AmountMismatch(DomainError):
    """A fee line's amount disagrees with quantity × unit price (明细金额不符)."""

    reason_code: str = "AMOUNT_MISMATCH"


@dataclass
class InvalidPolicy(DomainError):
    """The insured-place policy (参保地政策) cannot be applied as written."""

    reason_code: str = "INVALID_POLICY"


@dataclass
class NoPolicyRule(DomainError):
    """No rule of the insured-place policy matches the visit: a stated refusal, never a default."""

    reason_code: str = "NO_POLICY_RULE"


_TYPED: Mapping[str, type[DomainError]] = {
    cls.reason_code: cls
    for cls in (InvalidArgument, InvalidCode, AmountMismatch, InvalidPolicy, NoPolicyRule)
}


def error_class(reason_code: str) -> type[DomainError]:
    """The typed exception for a reason (``DomainError`` itself for reasons without one)."""
    return _TYPED.get(reason_code, DomainError)


def invalid(
    reason_code: str,
    field_path: str,
    description: str,
    *,
    metadata: Mapping[str, str] | None = None,
) -> DomainError:
    """A bad-input error naming exactly one field (the common case at the edge)."""
    return error_class(reason_code)(
        reason_code,
        f"{field_path}: {description}",
        (FieldViolation(field_path, description),),
        dict(metadata or {}),
    )


def combine(errors: Iterable[DomainError]) -> DomainError | None:
    """Merge several bad-input errors into one carrying every field violation."""
    collected = list(errors)
    if not collected:
        return None
    first = collected[0]
    violations = tuple(v for e in collected for v in e.violations)
    message = "; ".join(e.message for e in collected)
    return error_class(first.reason_code)(first.reason_code, message, violations, dict(first.metadata))
