"""What robots write, in the languages our dealers' mail arrives in. (Pure data.)

Subjects and body phrases of delivery failures, delays and successes as the common mail
systems write them (Postfix, Exim, Sendmail, qmail, Exchange/Office 365, Gmail, Domino,
GMX/WEB.DE/1&1/T-Online, Orange, Libero, KPN/Ziggo, Telefónica), of list managers (Mailman,
LISTSERV, Sympa, Google Groups), challenge-response systems and vacation notices. Each
pattern alone is no proof: the classifier asks for a robot signal beside it (a daemon or
empty sender, a null return path, Auto-Submitted, a returned message), except for phrases
no person writes.
"""

from __future__ import annotations

import re

BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|return(ed)? to sender|delivery status notification|"
    r"delivery (has )?failed|mail delivery (failed|failure|system)|failure notice|delivery failure|"
    r"non[- ]?deliver|message not delivered|could not be delivered|delivery notification|"
    r"mail system error|"
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|nicht zugestellt|fehlgeschlagene zustellung|"
    r"benachrichtigung .{0,20}zustellstatus|zustellungsbericht|"
    r"non remis|non distribu|(é|e)chec de (la )?(remise|distribution|livraison)|message non d(é|e)livr|"
    r"non recapitabil|mancato recapito|impossibile recapitare|recapito non riuscito|"
    r"onbestelbaar|niet (worden )?bezorgd|bezorging mislukt|"
    r"no se puede entregar|no entregad|error (de|en la) entrega|entrega fallida|"
    r"delivery (delayed|delay)|delayed mail|warning: could not send|zustellung verz(ö|oe)gert|"
    r"remise diff(é|e)r|consegna ritardata|vertraagd|retrasad|"
    r"\b(relayed|delivered|zugestellt|(ü|ue)bermittelt|remis|consegnato|bezorgd|entregado)\s*:",
    re.I,
)

# Phrases of bounce bodies; the first group is written by mail systems only.
BOUNCE_BODY_CERTAIN = re.compile(
    r"this is the mail system at host|this message was created automatically by mail delivery software|"
    r"this is the qmail-send program|i'm afraid i wasn't able to deliver your message|"
    r"-{3,} ?the following addresses had permanent fatal errors|-{3,} ?transcript of session follows|"
    r"delivery has failed to these recipients or groups|"
    r"your message (couldn't|could not|wasn't|was not) (be )?delivered|"
    r"delivery to the following recipients? failed|the following message to <[^>]+> was undeliverable|"
    r"diese nachricht wurde automatisch von der mail-?software erstellt|"
    r"dies ist eine automatisch erstellte benachrichtigung (ü|ue)ber den zustellstatus|"
    r"die nachricht konnte nicht an folgende empf(ä|ae)nger oder gruppen (ü|ue)bermittelt werden|"
    r"fehler bei der zustellung an folgende empf(ä|ae)nger|"
    r"(ihre|die) (e-?mail|nachricht) konnte nicht (zugestellt|(ü|ue)bermittelt) werden|"
    r"le message n'a pas pu (ê|e)tre (remis|distribu)|votre message n'a pas pu (ê|e)tre (remis|distribu)|"
    r"la remise (a|à) (é|e)chou|"
    r"il messaggio non (è|e') stato (recapitato|consegnato)|impossibile recapitare il messaggio|"
    r"uw bericht (kon|kan) niet worden (bezorgd|afgeleverd)|het bericht kan niet worden bezorgd|"
    r"no se (pudo|ha podido) entregar (el|su) mensaje|el mensaje no se (pudo|ha podido) entregar|"
    r"delivery status notification|reporting-mta:|final-recipient:",
    re.I,
)
DELAY_TEXT = re.compile(
    r"delay|has not (yet )?been delivered|could not send message for past|will (continue to )?(retry|try)|"
    r"verz(ö|oe)ger|noch nicht zugestellt|wird weiter versucht|diff(é|e)r|ritard|vertraag|retras",
    re.I,
)
SUCCESS_TEXT = re.compile(
    r"\b(relayed|delivered|zugestellt|(ü|ue)bermittelt|consegnato|bezorgd|entregado)\s*:|"
    r"delivery (to the following recipients? )?(was )?(successful|succeeded|complete)|"
    r"was successfully delivered|erfolgreich zugestellt|zustellung erfolgreich|remis avec succ",
    re.I,
)

ARF_SUBJECT = re.compile(
    r"abuse report|complaint about message|spam report|feedback loop|\bfbl\b|beschwerde|"
    r"spam-?beschwerde|plainte|segnalazione (di )?(spam|abuso)",
    re.I,
)
ARF_BODY = re.compile(
    r"feedback-type:\s*\w+|this is an? (e-?mail )?abuse report|abuse reporting format", re.I
)

LIST_SENDER = re.compile(
    r"(^owner-|-owner$|-bounces?$|-request$|-admin$|^listserv$|^majordomo$|^mailman$|^sympa$|"
    r"^ezmlm$|^lyris|^listmaster$)",
    re.I,
)
LIST_SUBJECT = re.compile(
    r"you are not (a )?member|not a member of|loop alert|duplicated? message-?id|"
    r"awaits moderator approval|post(ing)? (to .{1,80} )?(requires|needs) approval|"
    r"rejected posting|message rejected by|your message to .{1,80} (was rejected|has been rejected|"
    r"awaits)|auto-?response for your message to|confirm(ation of)? (your )?subscription|"
    r"welcome to the .{1,80} (mailing )?list|unsubscribe confirmation|"
    r"sie sind kein mitglied|nicht mitglied der (liste|gruppe)|wartet auf (freigabe|moderation)|"
    r"address not found.{0,40}group|group.{0,40}(does not exist|you do not have permission)",
    re.I,
)
LIST_HEADERS = ("x-mailman-version", "x-list-administrivia", "x-listserver", "x-sympa-to", "x-ezmlm-version")

CHALLENGE_HEADERS = ("x-challenge", "x-tmda-fingerprint", "x-boxbe-notification", "x-spamarrest-noauth")
CHALLENGE_SENDER = re.compile(r"@(.*\.)?(spamarrest\.com|boxbe\.com|mailinblack\.com|choicemail)", re.I)
CHALLENGE_SUBJECT = re.compile(
    r"please confirm (your )?(e-?mail|message|that you)|verify (your )?(e-?mail|message|sender)|"
    r"requires verification|sender verification|(your )?message (is )?(held|pending|waiting) for "
    r"(approval|verification)|challenge|spam arrest|boxbe|mailinblack|verify#|"
    r"best(ä|ae)tigen sie ihre (e-?mail|nachricht)|absender.?(verifizierung|best(ä|ae)tigung)|"
    r"wartet auf (ihre )?best(ä|ae)tigung|confirmez votre (message|adresse)|verifica (il )?mittente",
    re.I,
)

VACATION_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort|respuesta|risposta|r(é|e)ponse)|"
    r"automatische antwort|automatisch antwoord|automatisk svar|out of (the )?office|ooo\b|"
    r"abwesenheitsnotiz|abwesenheitsmeldung|(abwesenheit|abwesend|urlaub|absence|ausente|vacaciones|"
    r"afwezig)\s*:|i am away|i'?m away|on vacation|on leave|"
    r"r(é|e)ponse automatique|absent du bureau|risposta automatica|fuori sede|fuori ufficio|"
    r"niet aanwezig|respuesta autom(á|a)tica|fuera de la oficina)",
    re.I,
)
VACATION_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-vacation",
    "x-autoresponder",
    "x-ms-exchange-autoreply",
)

# Local parts of mail systems and their bounce handlers.
DAEMON_LOCALPART = re.compile(
    r"^(mailer-daemon|mail-daemon|mailerdaemon|postmaster|mail\.?delivery\.?system|"
    r"mail-delivery-subsystem|bounce|bounces|double-bounce|returns?)$",
    re.I,
)
