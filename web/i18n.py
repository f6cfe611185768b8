"""The pane's words in German and English, and times as people at the dealer write them.

A catalog in code rather than gettext files: no compile step, and a missing translation is a
KeyError in the tests, not an English word on a German screen.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, format_timedelta

from templates_email import labels
from web.report_texts import REPORT_TEXTS

LANGUAGES = ("de", "en")

TEXTS: dict[str, tuple[str, str]] = {
    # key: (German, English)
    "leads": ("Leads", "Leads"),
    "unassigned": ("Nicht zugeordnet", "Unassigned mails"),
    "reasons": ("Abschlussgründe", "Completion reasons"),
    "operations": ("Betrieb", "Operations"),
    "settings": ("Einstellungen", "Settings"),
    "sign_in": ("Anmelden", "Sign in"),
    "sign_out": ("Abmelden", "Sign out"),
    "dealer": ("Autohaus", "Dealer"),
    "user": ("Benutzer", "User"),
    "password": ("Passwort", "Password"),
    "new_password": ("Neues Passwort", "New password"),
    "current_password": ("Aktuelles Passwort", "Current password"),
    "repeat_password": ("Passwort wiederholen", "Repeat the password"),
    "set_password": ("Passwort festlegen", "Set password"),
    "invalid_sign_in": (
        "Anmeldung fehlgeschlagen: Autohaus, Benutzer oder Passwort stimmen nicht.",
        "Sign-in failed: dealer, user or password is wrong.",
    ),
    "throttled": (
        "Zu viele Fehlversuche. Bitte in {minutes} Minuten erneut versuchen.",
        "Too many failed attempts. Please try again in {minutes} minutes.",
    ),
    "form_expired": (
        "Das Formular ist abgelaufen. Bitte die Seite neu laden.",
        "The form has expired. Please reload the page.",
    ),
    "invitation_invalid": (
        "Dieser Einladungslink ist nicht mehr gültig.",
        "This invitation link is no longer valid.",
    ),
    "passwords_differ": ("Die Passwörter stimmen nicht überein.", "The passwords do not match."),
    "welcome_invite": (
        "Willkommen, {name}. Legen Sie Ihr Passwort fest.",
        "Welcome, {name}. Choose your password.",
    ),
    "view_all": ("Alle offenen", "All open"),
    "view_my": ("Meine Leads", "My leads"),
    "view_pool": ("Pool", "Pool"),
    "view_soon": ("Bald fällig", "Due soon"),
    "view_overdue": ("Überfällig", "Overdue"),
    "view_completed": ("Abgeschlossen", "Completed"),
    "search": ("Suche", "Search"),
    "search_hint": (
        "Name, E-Mail, Telefon, Betreff, Text, Fahrzeug",
        "Name, email, phone, subject, text, vehicle",
    ),
    "apply": ("Anwenden", "Apply"),
    "reset": ("Zurücksetzen", "Reset"),
    "any": ("alle", "any"),
    "customer": ("Kunde", "Customer"),
    "type": ("Art", "Type"),
    "editor": ("Bearbeiter", "Editor"),
    "source": ("Quelle", "Source"),
    "status": ("Status", "Status"),
    "last_activity": ("Letzte Aktivität", "Last activity"),
    "due": ("Fällig", "Due"),
    "due_state": ("Fälligkeit", "Due state"),
    "sort": ("Sortierung", "Sort"),
    "sort_activity": ("Letzte Aktivität", "Last activity"),
    "sort_due": ("Fälligkeit", "Due date"),
    "state_open": ("offen", "open"),
    "state_completed": ("abgeschlossen", "completed"),
    "due_none": ("–", "–"),
    "due_soon": ("bald fällig", "due soon"),
    "due_overdue": ("überfällig", "overdue"),
    "due_filter_none": ("nicht fällig", "not due"),
    "pool": ("Pool", "Pool"),
    "no_leads": ("Keine Leads gefunden.", "No leads found."),
    "n_of_total": ("{first}–{last} von {total}", "{first}–{last} of {total}"),
    "previous": ("Zurück", "Previous"),
    "next": ("Weiter", "Next"),
    "shortcuts": ("Tastenkürzel", "Keyboard shortcuts"),
    "shortcut_jk": ("nächster / vorheriger Lead", "next / previous lead"),
    "shortcut_enter": ("Lead öffnen", "open the lead"),
    "shortcut_slash": ("Suchen", "search"),
    "shortcut_help": ("diese Hilfe", "this help"),
    "close": ("Schließen", "Close"),
    "auto_refresh": ("Die Liste aktualisiert sich selbst.", "The list refreshes by itself."),
    "lead": ("Lead", "Lead"),
    "contact": ("Kontakt", "Contact"),
    "name": ("Name", "Name"),
    "email": ("E-Mail", "Email"),
    "phone": ("Telefon", "Phone"),
    "all_leads_of_contact": ("Alle Leads dieses Kontakts", "All leads of this contact"),
    "vehicle": ("Fahrzeug", "Vehicle"),
    "trade_ins": ("Inzahlungnahmen", "Trade-ins"),
    "make": ("Marke", "Make"),
    "model": ("Modell", "Model"),
    "year": ("Baujahr", "Year"),
    "condition": ("Zustand", "Condition"),
    "price": ("Preis", "Price"),
    "vin": ("FIN", "VIN"),
    "mileage": ("Kilometerstand", "Mileage"),
    "message": ("Nachricht", "Message"),
    "subject": ("Betreff", "Subject"),
    "original_html": (
        "HTML-Ansicht (bereinigt, externe Bilder blockiert)",
        "HTML view (sanitised, remote images blocked)",
    ),
    "attachments": ("Anhänge", "Attachments"),
    "timeline": ("Verlauf", "Timeline"),
    "access_log": ("Zugriffe (Protokoll)", "Access log"),
    "mailboxes": ("Postfächer", "Mailboxes"),
    "mailboxes_note": (
        "Postfächer bei Microsoft 365 oder Google werden mit OAuth2 verbunden. Beim Anbieter "
        "als Weiterleitungsadresse eintragen:",
        "Mailboxes at Microsoft 365 or Google connect with OAuth2. Register this redirect "
        "address with the provider:",
    ),
    "mailbox": ("Postfach", "Mailbox"),
    "provider": ("Anbieter", "Provider"),
    "connect": ("Verbinden", "Connect"),
    "connect_again": ("Neu verbinden", "Connect again"),
    "mailbox_connected": ("Das Postfach ist verbunden.", "The mailbox is connected."),
    "grant_connected": ("verbunden", "connected"),
    "grant_not_connected": ("nicht verbunden", "not connected"),
    "grant_refused": ("abgelehnt – neu verbinden", "refused – connect again"),
    "no_oauth_mailboxes": (
        'Kein Postfach mit auth = "xoauth2" in der Händlerdatei.',
        'No mailbox with auth = "xoauth2" in the dealer file.',
    ),
    "access_read": ("angesehen", "viewed"),
    "access_change": ("geändert", "changed"),
    "access_download": ("Original geladen", "downloaded the original"),
    "access_export": ("Daten exportiert", "exported the data"),
    "access_erase": ("Daten gelöscht", "erased the data"),
    "access_retention": ("nach Aufbewahrungsfrist anonymisiert", "anonymised after the retention period"),
    "actions": ("Aktionen", "Actions"),
    "reassign": ("Neu zuweisen", "Reassign"),
    "to_pool": ("In den Pool", "To the pool"),
    "absent_until": ("abwesend bis {date}", "absent until {date}"),
    "set_due": ("Wiedervorlage / Fälligkeit", "Resubmission / due date"),
    "due_hint": ("z. B. 2026-12-01 10:00, 2026-12-01 oder +2h", "e.g. 2026-12-01 10:00, 2026-12-01 or +2h"),
    "save": ("Speichern", "Save"),
    "note": ("Notiz", "Note"),
    "add_note": ("Notiz hinzufügen", "Add note"),
    "reply": ("Antworten", "Reply"),
    "reply_hint": (
        "Ihr Text, eingerahmt von Kopf und Fuß des Autohauses.",
        "Your text, framed by the dealer's header and footers.",
    ),
    "preview": ("Vorschau", "Preview"),
    "send": ("Senden", "Send"),
    "reply_queued": ("Antwort an {email} wird gesendet.", "Reply to {email} is being sent."),
    "complete": ("Abschließen", "Complete"),
    "completion_reason": ("Abschlussgrund", "Completion reason"),
    "choose": ("Bitte wählen …", "Please choose …"),
    "reopen": ("Wieder öffnen", "Reopen"),
    "completed_as": ("Abgeschlossen: {reason}", "Completed: {reason}"),
    "done": ("Erledigt.", "Done."),
    "not_found": ("Nicht gefunden.", "Not found."),
    "back_to_list": ("Zur Liste", "Back to the list"),
    "received": ("Eingegangen", "Received"),
    "from": ("Von", "From"),
    "why": ("Grund", "Why"),
    "view": ("Ansehen", "View"),
    "no_unassigned": ("Keine Mails in der Warteschlange.", "No mails are waiting."),
    "reparse": ("Erneut erkennen", "Recognise again"),
    "as_source": ("als Quelle", "as source"),
    "create_lead": ("Lead anlegen", "Create lead"),
    "delete": ("Löschen", "Delete"),
    "delete_hint": (
        "Aus der Warteschlange nehmen; die Mail bleibt gespeichert.",
        "Out of the queue; the mail stays stored.",
    ),
    "reparse_result": ("Ergebnis: {state}", "Result: {state}"),
    "code": ("Code", "Code"),
    "label": ("Bezeichnung", "Label"),
    "hidden": ("ausgeblendet", "hidden"),
    "hide": ("Ausblenden", "Hide"),
    "show": ("Einblenden", "Show"),
    "rename": ("Umbenennen", "Rename"),
    "add_reason": ("Eigenen Grund hinzufügen", "Add your own reason"),
    "system": ("System", "System"),
    "own": ("eigener", "own"),
    "from_file": ("aus der Konfigurationsdatei", "from the dealer file"),
    "reasons_note": (
        "Gründe aus der Konfigurationsdatei gehören der Datei: Änderungen hier gelten bis zum nächsten "
        "„lms config apply“, das denselben Code nennt. Hier angelegte oder geänderte Gründe, die die "
        "Datei nicht nennt, bleiben beim Anwenden der Datei unberührt.",
        "Reasons named in the dealer file belong to the file: a change made here lasts until the next "
        "`lms config apply` that names the same code. Reasons added or changed here that the file does "
        "not name are left alone when the file is applied.",
    ),
    "inbound": ("Eingang", "Inbound"),
    "outbound": ("Ausgang", "Outbound"),
    "queues": ("Warteschlangen", "Queues"),
    "oldest_pending": ("Älteste offene Mail (Sekunden)", "Oldest pending mail (seconds)"),
    "dead_letters": ("Tote und fehlgeschlagene Mails", "Dead and failed mails"),
    "error": ("Fehler", "Error"),
    "retry": ("Erneut versuchen", "Retry"),
    "retry_all": ("Alle erneut versuchen", "Retry all"),
    "retried": (
        "{inbound} eingehende und {outbound} ausgehende Mails erneut eingereiht.",
        "{inbound} inbound and {outbound} outbound mails queued again.",
    ),
    "nothing_failed": ("Nichts ist fehlgeschlagen.", "Nothing has failed."),
    "imap": ("IMAP-Postfächer", "IMAP mailboxes"),
    "language": ("Sprache", "Language"),
    "language_default": ("wie das Autohaus ({lang})", "as the dealer ({lang})"),
    "password_changed": (
        "Passwort geändert; andere Sitzungen wurden beendet.",
        "Password changed; other sessions were signed out.",
    ),
    "wrong_password": ("Das aktuelle Passwort stimmt nicht.", "The current password is wrong."),
    "times_in": ("Zeiten in {zone}", "Times in {zone}"),
    "kind": ("Art", "Kind"),
    "id": ("Nr.", "No."),
    "recipient": ("Empfänger", "Recipient"),
    "attempts": ("Versuche", "Attempts"),
    "state": ("Zustand", "State"),
    "nobody": ("niemand", "nobody"),
    "skip_to_content": ("Zum Inhalt", "Skip to content"),
}

TEXTS.update(REPORT_TEXTS)  # the reports page (issue 16)

ACTIVITY_LABELS: dict[str, tuple[str, str]] = {
    "received": ("Eingegangen", "Received"),
    "assigned": ("Zugewiesen", "Assigned"),
    "autoresponse": ("Automatische Antwort", "Autoresponse"),
    "autoresponse_skipped": ("Keine automatische Antwort", "No autoresponse"),
    "forward": ("Weitergeleitet", "Forwarded"),
    "notification": ("Benachrichtigung", "Notification"),
    "reply": ("Antwort", "Reply"),
    "customer_reply": ("Antwort des Kunden", "Customer replied"),
    "enquiry": ("Neue Anfrage", "New enquiry"),
    "resent": ("Erneut gesendet", "Sent again"),
    "note": ("Notiz", "Note"),
    "due_changed": ("Fälligkeit geändert", "Due date changed"),
    "reminder": ("Erinnerung", "Reminder"),
    "reminder_skipped": ("Erinnerung übersprungen", "Reminder skipped"),
    "escalated": ("Eskaliert", "Escalated"),
    "completed": ("Abgeschlossen", "Completed"),
    "reopened": ("Wieder geöffnet", "Reopened"),
}

SYSTEM_REASON_LABELS: dict[str, tuple[str, str]] = {
    "sold": ("Fahrzeug verkauft", "Vehicle sold"),
    "bought_elsewhere": ("Woanders gekauft", "Bought elsewhere"),
    "no_interest": ("Kein Interesse mehr", "No longer interested"),
    "unreachable": ("Kunde nicht erreichbar", "Customer unreachable"),
    "duplicate": ("Doppelte Anfrage", "Duplicate enquiry"),
    "spam": ("Spam oder Test", "Spam or test"),
}


class Translator:
    """The words, dates and times for one person: their language, the dealer's zone and country."""

    def __init__(self, lang: str, zone: str = "UTC", country: str = "DE") -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self.zone = ZoneInfo(zone)
        self.zone_name = zone
        try:
            self.locale = Locale.parse(f"{self.lang}_{country}")
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse(self.lang)

    def __call__(self, key: str, **values: object) -> str:
        text = TEXTS[key][0 if self.lang == "de" else 1]
        return text.format(**values) if values else text

    def _pick(self, table: dict[str, tuple[str, str]], key: str) -> str:
        pair = table.get(key)
        return pair[0 if self.lang == "de" else 1] if pair else key

    def lead_type(self, code: str) -> str:
        return str(labels(self.lang)["lead_types"].get(code, code))

    def activity(self, kind: str) -> str:
        return self._pick(ACTIVITY_LABELS, kind)

    def system_reason(self, code: str, fallback: str) -> str:
        pair = SYSTEM_REASON_LABELS.get(code)
        return pair[0 if self.lang == "de" else 1] if pair else fallback

    def datetime(self, value: dt.datetime | str | None) -> str:
        if value is None or value == "":
            return "–"
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        local = moment.astimezone(self.zone)
        day = format_date(local, "medium", locale=self.locale)
        return f"{day} {format_time(local, 'short', locale=self.locale)}"

    def date(self, value: dt.datetime | str | None) -> str:
        if value is None or value == "":
            return "–"
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(moment, dt.datetime):
            moment = moment.astimezone(self.zone)
        return format_date(moment, "medium", locale=self.locale)

    def relative(self, value: dt.datetime | str | None, now: dt.datetime) -> str:
        if value is None or value == "":
            return ""
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        delta: timedelta = moment - now
        return format_timedelta(delta, add_direction=True, threshold=1.1, locale=self.locale)

    def local_input(self, value: dt.datetime | None) -> str:
        """For an ``<input type=datetime-local>``: the dealer's wall clock, minutes."""
        return value.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M") if value else ""
