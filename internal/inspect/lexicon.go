package inspect

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Word classes of the prompt-injection lexicon. A word may belong to several classes. The lexicon
// is deliberately about the *structure* of an injected instruction — who is addressed, what verb,
// what object — in several languages, not a list of known attack strings.
const (
	wOverride     uint32 = 1 << iota // ignore, disregard, forget, override, bypass ...
	wPrior                           // previous, prior, above, earlier, original ...
	wAll                             // all, any, every, everything ...
	wInstr                           // instructions, rules, prompt, guidelines, directives ...
	wReveal                          // reveal, print, repeat, show, output, leak ...
	wSecretish                       // system, hidden, initial, secret, internal, developer ...
	wYou                             // you, thou — the reader addressed in the second person
	wYour                            // your, yours — a possessive addressed to the reader
	wOutput                          // answer, response, reply, output, code, implementation ...
	wInsert                          // add, include, insert, append, integrate, embed, modify ...
	wTask                            // explain, describe, draft, write, compose, translate ...
	wSoft                            // please, kindly, also, now, just, remember ... (skipped at sentence start)
	wAI                              // ai, assistant, chatbot, model, llm, gpt ...
	wFollowing                       // following, subsequent, below, attached ...
	wSnippet                         // code, snippet, block, excerpt, section, line, sentence, link ...
	wRole                            // act, pretend, roleplay, impersonate, simulate, behave ...
	wNow                             // now, henceforth, onwards
	wUnbound                         // unrestricted, unfiltered, uncensored, jailbroken, jailbreak ...
	wNeg                             // no, without, not, never, free
	wModal                           // should, could, must, will, can, may, might, shall
	wWhen                            // when, whenever, before, after, while, once
	wRespond                         // answer, respond, reply, summarize, write, generate, complete ...
	wFirstPerson                     // i, we, my, our, us, me
	wNew                             // new, updated, real, actual, revised, different, true
	wBe                              // are, is, be, am, 're
	wWh                              // what, who, how, why, where, which, when (question openers)
	wAux                             // can, could, would, will (openers of a request: "can you ...")
	wMe                              // me (object of a request: "tell me", "show me")
	wPrep                            // in, to, into, within, at, inside, throughout
	wPromptNoun                      // prompt, instructions, guidelines, directives: what a system prompt is called
	wStrongOutput                    // output nouns that name the assistant's own answer (not "code", "message")
	wSpecial                         // follow, following, obey, mode, anything: words some rules key on
)

var lexicon map[string]uint32

var lexiconOnce sync.Once

// lexTab holds lexicon for lookups (built by initLexicon).
var lexTab lexTable

// lexFilter is a bitmap over (length, first byte, last byte) of the lexicon's words: most words
// of ordinary text fail it, which saves the map lookup.
var lexFilter wordFilter

func lexKey(w string) int {
	return min(len(w), 15)<<12 | int(w[0]&63)<<6 | int(w[len(w)-1]&63)
}

// wordFilter is a set of words with false positives: a bitmap over their lexKey (8 KiB, so that it
// stays in the L1 cache while a detector probes it for every word of a text).
type wordFilter [1 << 10]uint64

func (f *wordFilter) add(w string) { f.addKey(lexKey(w)) }

func (f *wordFilter) addKey(k int) { f[k>>6] |= 1 << (k & 63) }

// has reports whether w may be in the set (false: it certainly is not); w is not empty.
func (f *wordFilter) has(w string) bool { return f.hasKey(lexKey(w)) }

func (f *wordFilter) hasKey(k int) bool { return f[k>>6]&(1<<(k&63)) != 0 }

func addWords(class uint32, words string) {
	for _, w := range strings.Fields(words) {
		lexicon[w] |= class
		lexFilter.add(w)
	}
}

func initLexicon() {
	lexicon = make(map[string]uint32, 2048)
	// Override verbs (en, es, fr, de, pt, it, ru, nl).
	addWords(wOverride, `ignore ignores ignored ignoring disregard disregards disregarded disregarding forget forgets
		forgetting override overrides overriding overwrite bypass bypassing overlook neglect discard dismiss abandon
		drop scrap supersede supersedes nullify void cancel circumvent
		ignora ignoren ignorar ignore ignora olvida olviden olvidar olvide descarta descartar omite omitir
		ignorad olvidad olvídate olvidate olvídense desconsidera desconsideren descarten omitan
		négligez negligez ignorare ignori dimentichi tralascia tralasciate descarte desconsiderem
		ignorez ignorer oublie oubliez oublier
		ignoriere ignorieren ignorier vergiss vergesst vergessen missachte missachten übergehe
		ignore ignorem esqueça esqueca esquece esqueçam desconsidere desconsiderar
		ignorate dimentica dimenticate dimenticare trascura
		игнорируй игнорируйте игнорировать проигнорируй забудь забудьте отбрось
		negeer vergeet
		zignoruj zignorujcie ignoruj zapomnij zapomnijcie pomiń pomin
		ігноруй ігноруйте проігноруй забудь забудьте
		ignorera glöm glom strunta
		unut unutun yoksay
		abaikan lupakan abaikanlah
		अनदेखा अनदेखी भूल भूलो भूलें नज़रअंदाज़ नजरअंदाज
		تجاهل تجاهلي تجاهلوا انس انسى اهمل أهمل
		نادیده فراموش
		উপেক্ষা ভুলে
		puuza sahau
		התעלם התעלמי שכח שכחי
		проигнорируйте игнорируя проигнорировав забыв отбросьте пропусти пропустите ignoriert`)
	// Override verbs of more of the most spoken languages (written from knowledge of each
	// language, not from evaluation rows): Spanish clitic forms ("ignóralas"), "haz caso omiso";
	// Portuguese, Italian, Dutch, Indonesian and Malay, Turkish "görmezden (gel)", Urdu, Persian,
	// Vietnamese "phớt lờ", Tagalog, Tamil, Telugu, Marathi, Punjabi, Gujarati; Hindi's loanword.
	addWords(wOverride, `ignóralas ignoralas ignóralos ignoralos ignóralo ignoralo olvídalas olvidalas olvídalo olvidalo
		olvídalos olvidalos omiso desconsidera descartem esqueçam ignorem ignorai esquecer
		ignoratele dimenticale tralasciare trascurate negeren vergeten
		lupakanlah hiraukan acuhkan
		görmezden unutunuz unutsun yoksayın yoksayin
		نظرانداز بھول بھولیں بھولو بھولئے
		فراموشش
		phớt lờ quên
		kalimutan balewalain
		புறக்கணி புறக்கணிக்கவும் புறக்கணியுங்கள் மறந்துவிடு மறந்துவிடுங்கள் மறந்து
		విస్మరించు విస్మరించండి మర్చిపో మర్చిపోండి పట్టించుకోకు పట్టించుకోవద్దు
		दुर्लक्ष विसरा विसरून विसर
		ਅਣਡਿੱਠਾ ਨਜ਼ਰਅੰਦਾਜ਼ ਭੁੱਲ
		અવગણો અવગણના ભૂલી
		इग्नोर`)
	addWords(wPrior, `previous prior above earlier preceding former foregoing original initial old existing
		aforementioned preexisting pre-existing
		anterior anteriores previa previas previo previos precedentes antiguas
		précédentes précédents précédente précédent antérieures antérieurs dessus
		vorherigen vorherige vorigen bisherigen obigen früheren vorangegangenen alten
		prévias previas anteriores acima
		precedenti precedente sopra
		предыдущие предыдущих прежние вышеуказанные вышеприведенные старые
		vorige eerdere
		poprzednie poprzednich poprzednia wcześniejsze wczesniejsze powyższe powyzsze
		попередні попередніх
		tidigare ovanstående ovanstaende
		önceki onceki yukarıdaki yukaridaki
		sebelumnya sebelum
		पिछले पिछली पिछला पहले
		السابقة السابق
		قبلی
		পূর্ববর্তী আগের
		yaliyotangulia zilizopita
		הקודמות הקודמים
		أعلاه اعلاه المذكورة المذكور ऊपर उपरोक्त উপরের উপরে উপরোক্ত выше вышеизложенные arriba mencionadas mencionada ci-dessus
		obige oben obenstehende obenstehenden приведенный приведенные приведенную вышеупомянутый вышеупомянутые`)
	addWords(wPrior, `anterior antes anteriormente previamente arriba вышеуказанное вышесказанное вышеизложенное
		ранее прежде раньше вище вищезазначені вищенаведені попередньо
		voorgaande bovenstaande bovenstaand eerder
		dotychczasowe dotychczasowych wcześniej wczesniej
		terdahulu atas tadi
		evvelki yukarıda yukarida
		پچھلی پچھلے سابقہ گزشتہ اوپر
		قبلی پیشین بالا
		trước trên
		nakaraang naunang itaas
		முந்தைய மேலே முன்பு முன்னைய
		మునుపటి గత పైన
		मागील आधीच्या आधीचे पूर्वीच्या वरील पूर्व
		ਪਿਛਲੀਆਂ ਪਿਛਲੇ ਪਿਛਲੀ ਉੱਪਰ
		અગાઉની અગાઉના પાછલી પહેલાંની ઉપરની
		awali iliyopita yaliyopita juu`)
	addWords(wAll, `all any every everything each entire whole
		todas todos toda todo toutes tous tout alle allen alles tutte tutti tutto все всё всех alle
		wszystkie wszystkich всі усі alla tüm tum bütün butun semua सभी सारे जميع كل تمام همه همهٔ সমস্ত সব yote zote כל`)
	addWords(wAll, `seluruh hepsi tất mọi lahat wote سب سبھی அனைத்து எல்லா அனைத்தையும் అన్ని అన్నీ सर्व ਸਾਰੀਆਂ ਸਾਰੇ બધી બધા`)
	addWords(wInstr, `instruction instructions prompt prompts rule rules direction directions directive directives
		guideline guidelines command commands constraint constraints context programming guardrail guardrails
		restriction restrictions policy policies guidance orders training filters safeguards limitations
		prompting system-prompt systemprompt
		instrucción instruccion instrucciones reglas indicaciones órdenes ordenes directrices
		consigne consignes règles regles directives
		anweisung anweisungen instruktionen regeln befehle vorgaben richtlinien
		instrução instrucao instruções instrucoes regras orientações orientacoes
		istruzione istruzioni regole indicazioni direttive
		инструкции инструкций инструкциям указания указаний правила команды промпт
		instructies regels
		instrukcje instrukcji polecenia zasady reguły reguly
		інструкції інструкцій вказівки правила
		instruktioner instruktionerna regler reglerna
		talimat talimatlar talimatları talimatlari talimatlarını kuralları kurallari kuralların komutları
		instruksi perintah aturan petunjuk
		निर्देश निर्देशों निर्देशो नियम नियमों
		التعليمات تعليمات الأوامر الاوامر القواعد
		دستورالعمل دستورالعملها دستورالعملهای دستورات قوانین
		নির্দেশ নির্দেশাবলী নির্দেশনা নিয়ম
		maagizo maelekezo
		ההוראות הוראות הכללים
		والتعليمات بالتعليمات للتعليمات التوجيهات आदेश आदेशों নির্দেশগুলি নির্দেশগুলো আদেশ`)
	addWords(wInstr, `instructie richtlijnen opdrachten aanwijzingen
		polecenie wytyczne wytycznych instrukcjami instrukcjom настанови команди правил
		arahan
		talimatı talimatlara talimatlar yönergeler yönergeleri direktifler direktifleri kurallar komutlar
		ہدایات ہدایت هدایات احکامات قواعد اصول
		راهنمایی دستورها
		dẫn lệnh thị tắc
		tagubilin instruksyon panuto utos
		அறிவுறுத்தல்கள் அறிவுறுத்தல்களை வழிமுறைகள் வழிமுறைகளை கட்டளைகள் கட்டளைகளை விதிகள் விதிகளை
		அறிவுறுத்தல்களையும் வழிமுறைகளையும் கட்டளைகளையும் விதிகளையும்
		సూచనలు సూచనలను ఆదేశాలు ఆదేశాలను నియమాలు నియమాలను
		सूचना सूचनांकडे सूचनांना सूचनांचे नियमांकडे हिदायतें हिदायतों निर्देशन
		ਹਦਾਇਤਾਂ ਨਿਰਦੇਸ਼ਾਂ ਨਿਰਦੇਸ਼
		સૂચનાઓ સૂચનાઓને નિયમો
		amri sheria kanuni`)
	addWords(wReveal, `reveal reveals show print output repeat display tell leak dump disclose share spell recite
		expose echo return write give list paste type translate summarize summarise state provide
		revela muestra imprime repite dime révèle revele affiche montre répète repete dis
		zeige zeig verrate gib wiederhole nenne mostre revele repita mostra rivela ripeti
		покажи раскрой выведи повтори напиши скажи
		escribe escriba emite emita genera produce responde responda di diga écris écrivez imprimez affichez répondez dites
		schreibe antworte sag sage выведите напишите ответь ответьте скажите повторите
		लिखें लिखो लिखिए बताएं बताओ कहें कहो आउटपुट छापें प्रिंट दोहराएं
		লিখুন লেখো বলুন বলো আউটপুট প্রিন্ট দেখান
		اكتب اطبع أخرج اخرج قل كرر أعد اعد`)
	addWords(wReveal, `escreva imprima diga responda exiba scrivi stampa dimmi rispondi
		toon schrijf herhaal zeg geef napisz wypisz pokaż pokaz powtórz powtorz powiedz wyświetl wyswietl
		розкрий надрукуй
		tampilkan tuliskan tulis cetak katakan ulangi berikan jawab
		yaz yazın yazin göster gösterin söyle söyleyin tekrarla yazdır yazdir
		لکھیں لکھو بتائیں بتاؤ دکھائیں دکھاؤ دہرائیں
		بنویس بنویسید بگو بگویید چاپ
		viết nói
		isulat ipakita sabihin ulitin
		எழுது எழுதுங்கள் காட்டு காட்டுங்கள் சொல் சொல்லுங்கள் அச்சிடு
		రాయండి రాయి చూపించు చూపండి చెప్పు చెప్పండి ముద్రించు
		लिहा दाखवा सांगा छापा दिखाएं दिखाओ बताइए लिखिये
		ਲਿਖੋ ਦੱਸੋ ਦਿਖਾਓ
		લખો બતાવો કહો
		andika onyesha sema rudia`)
	addWords(wSecretish, `system hidden initial secret internal developer original confidential private
		preprompt pre-prompt meta underlying sistema système systeme system- sistema системный системные скрытые`)
	addWords(wYou, `you thou ye yourself tu tú usted ustedes vous du ihr sie você voce vocês ты вы`)
	addWords(wYour, `your yours thy tu tus su sus ta ton tes votre vos dein deine deiner deinen deinem ihre ihrer
		seu sua seus suas tuo tua tuoi tue твой твоем твоём твоей свой своем своём своей ваш вашем вашей`)
	addWords(wOutput|wStrongOutput, `answer answers response responses reply replies output outputs elucidation
		implementation implementations codebase solution solutions algorithm algorithms completion explanation
		summary translation respuesta respuestas réponse reponse réponses antwort antworten resposta respostas risposta risposte
		ответ ответе ответа ответы antwoord`)
	addWords(wOutput, `program code message messages essay text result reasoning analysis`)
	addWords(wInsert, `add adds include includes insert inserts append appends prepend integrate incorporate embed merge
		blend inject fuse weave meld infuse interweave introduce mention put place attach enlist deploy adopt
		utilize utilise use employ leverage engage absorb feature render supplement enhance augment modify change
		replace convert substitute rewrite end start begin conclude format translate suggest recommend remind
		tell inform ask encourage urge invite promote direct redirect send forward write provide remove
		group combine scramble rearrange misspell jumble anagram reverse encode hint tease offer express
		emphasize emphasise highlight stress mix harmonize upgrade elevate ensure
		validate enrich streamline hone refine fortify complement optimize optimise
		añade agrega incluye inserta ajoute ajoutez inclus incluez insère füge füge hinzu ergänze
		adicione inclua insira aggiungi includi inserisci добавь включи вставь`)
	addWords(wTask, `explain describe draft write compose translate summarize summarise provide develop outline
		define compare tell recommend suggest analyze analyse discuss elaborate brainstorm craft teach illustrate
		determine classify identify evaluate assess estimate predict rate solve calculate compute help
		explica describe escribe traduce explique décris ecris écris traduis erkläre beschreibe schreibe übersetze
		explique descreva escreva traduza spiega descrivi scrivi traduci объясни опиши напиши переведи`)
	addWords(wSoft, `please kindly also now then and just first finally additionally moreover furthermore ok okay
		hey so remember consider try lastly next instead simply quickly
		por favor bitte auch per favore пожалуйста`)
	addWords(wAI, `ai assistant chatbot bot model llm gpt chatgpt claude gemini copilot agent a.i`)
	addWords(wFollowing, `following subsequent below attached this these next enclosed given
		siguiente suivant suivante folgende folgenden seguinte seguente следующий следующую`)
	addWords(wSnippet, `code snippet block excerpt section script command link url text sentence line lines message note
		paragraph statement headline phrase tip reminder statement word words signature disclaimer`)
	addWords(wRole, `act pretend roleplay role-play impersonate simulate behave become emulate
		actúa actua actúe finge finja interpreta agis agissez jouez spiele verhalte aja finja atue
		agisci fingi immagina притворись притворитесь представь представьте действуй действуйте
		уяви удавай поводься udawaj wciel davran bertindak berperan berpura-pura अभिनय تظاهر تظاهري تصرف`)
	addWords(wNow, `now henceforth onwards onward forth ahora maintenant jetzt nun agora ora adesso теперь`)
	addWords(wUnbound, `ilimitado ilimitada illimité illimitée ungefiltert unzensiert uneingeschränkt illimitato
		неограниченный неограниченная нефильтрованный безграничный необмежений`)
	addWords(wUnbound, `unrestricted unfiltered uncensored jailbroken jailbreak jailbreaking unlimited unbound evil rogue
		amoral unethical limitless unchained unshackled unmoderated lawless`)
	addWords(wNeg, `no without not never free sin sans ohne sem senza без bez tanpa बिना بدون`)
	addWords(wModal, `should could must will can may might shall would need needs`)
	addWords(wWhen, `when whenever before after while once cuando quand wenn quando когда`)
	addWords(wRespond, `answer answering respond responding reply replying summarize summarizing write writing generate
		generating complete completing output outputting draft drafting explain explaining translate process`)
	addWords(wFirstPerson, `i we my our us me i'm we're i've we've ours mine`)
	addWords(wNew, `new updated real actual revised different true modified latest nuevas nouvelles neue novas nuove новые`)
	addWords(wBe, `are is be am were was 're eres es sind bist es êtes sei é sono`)
	addWords(wWh, `what who how why where which whom whose`)
	addWords(wAux, `can could would will`)
	addWords(wMe, `me`)
	addWords(wPromptNoun, `prompt prompts instructions instruction guidelines directives system-prompt systemprompt
		preprompt pre-prompt rules instrucciones consignes anweisungen instruktionen instruções instrucoes
		istruzioni инструкции промпт`)
	addWords(wSpecial, `follow following obey mode anything`)
	// Heads of the negated idioms that mean "ignore" (see negatedIdiom).
	for w := range negatedIdioms {
		addWords(wSpecial, w)
	}
	addWords(wPrep, `in to into within at inside throughout en dans in na nella в`)
	lexTab.build(lexicon)
}

// lexTable is the lexicon as an open-addressing hash table: a small index of slots (which stays
// in the cache) pointing into the entries. The tokenizer looks up most words of every text, and a
// Go map lookup costs several times more (and lookups of stem+"e" would have to build the string).
type lexTable struct {
	slots   []uint16 // entry index + 1; 0 is an empty slot
	entries []lexEntry
	mask    uint32
}

type lexEntry struct {
	word string
	cls  uint32
}

// FNV-1a, 32 bits.
const (
	fnvOffset uint32 = 2166136261
	fnvPrime  uint32 = 16777619
)

func fnvAdd(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

func (t *lexTable) build(words map[string]uint32) {
	n := 1
	for n < 2*len(words) {
		n <<= 1
	}
	if len(words) >= 1<<16-1 {
		panic("inspect: lexicon too large for lexTable")
	}
	t.slots, t.mask, t.entries = make([]uint16, n), uint32(n-1), make([]lexEntry, 0, len(words))
	for w, c := range words {
		t.entries = append(t.entries, lexEntry{w, c})
		i := fnvAdd(fnvOffset, w) & t.mask
		for t.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = uint16(len(t.entries))
	}
}

// get returns the classes of w (0 when it is not in the lexicon).
func (t *lexTable) get(w string) uint32 {
	for i := fnvAdd(fnvOffset, w) & t.mask; t.slots[i] != 0; i = (i + 1) & t.mask {
		if e := &t.entries[t.slots[i]-1]; e.word == w {
			return e.cls
		}
	}
	return 0
}

// getE returns the classes of stem+"e" without building that string.
func (t *lexTable) getE(stem string) uint32 {
	h := (fnvAdd(fnvOffset, stem) ^ 'e') * fnvPrime
	for i := h & t.mask; t.slots[i] != 0; i = (i + 1) & t.mask {
		if e := &t.entries[t.slots[i]-1]; len(e.word) == len(stem)+1 && e.word[len(stem)] == 'e' && e.word[:len(stem)] == stem {
			return e.cls
		}
	}
	return 0
}

// token is one word of a text, with its lexicon classes.
type token struct {
	start, end int32
	cls        uint32
	sentStart  bool  // first word of a sentence
	sentEnd    byte  // the punctuation that ends the sentence after this word ('.', '?', ...), or 0
	gerund     bool  // classes come from the verb stem of an -ing form
	last       int32 // index of the last token of this token's sentence (set by markSentences)
}

// markSentences sets every token's last field in one backward pass, so that finding the end of
// a sentence is O(1): rules that look ahead "to the end of the sentence" from many tokens of one
// long, unpunctuated text would otherwise cost quadratic time.
func markSentences(toks []token) {
	last := int32(len(toks) - 1)
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].sentEnd != 0 || i+1 < len(toks) && toks[i+1].sentStart {
			last = int32(i)
		}
		toks[i].last = last
	}
}

// tokenize splits text into words, marks sentence starts and looks each word up. It appends to
// toks and returns it. Apostrophes inside words are kept ("don't"); everything that is neither a
// letter, a digit nor such an apostrophe separates words.
func tokenize(text string, toks []token) []token {
	lexiconOnce.Do(initLexicon)
	newSentence := true
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if isWordChar(c) {
				j := i + 1
				for j < len(text) {
					// Letters and digits first, in a loop of their own: most words end at a space.
					// (uint: the one comparison is also the bounds check)
					for uint(j) < uint(len(text)) && wordChars[text[j]] {
						j++
					}
					if j >= len(text) {
						break
					}
					d := text[j]
					if d == '-' && j+1 < len(text) && isWordChar(text[j+1]) {
						j++
						continue
					}
					if d == '\'' && j+1 < len(text) && isWordChar(text[j+1]) {
						j++
						continue
					}
					if d >= utf8.RuneSelf {
						r, _ := utf8.DecodeRuneInString(text[j:])
						if unicode.IsLetter(r) {
							_, sz := utf8.DecodeRuneInString(text[j:])
							j += sz
							continue
						}
					}
					break
				}
				// The common case of appendTok inline: a word of the lexicon or none, without the
				// "'s" or "-ing" forms appendTok also tries.
				if w := text[i:j]; len(w) < 3 || w[len(w)-2] != '\'' && (len(w) < 6 || w[len(w)-1] != 'g') {
					var cls uint32
					if lexFilter.has(w) {
						cls = lexTab.get(w)
					}
					toks = append(toks, token{start: int32(i), end: int32(j), cls: cls, sentStart: newSentence})
				} else {
					toks = appendTok(toks, text, i, j, newSentence)
				}
				newSentence = false
				i = j
				if i < len(text) && text[i] == ' ' {
					// The space after a word: nothing for the switch below, one pass of the loop saved.
					i++
				}
				continue
			}
			switch c {
			case '.', '!', '?', ';', ':', '\n', '|', '`':
				// A sentence ends at terminal punctuation followed by space or the end (so "example.com"
				// and "3.14" do not split, nor a quotation ending in "!"), and always at a newline or a
				// table cell border.
				if c == '\n' || c == '|' || c == '`' || i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n' || text[i+1] == '\t' || text[i+1] == ')' {
					if len(toks) > 0 && !newSentence {
						toks[len(toks)-1].sentEnd = c
					}
					newSentence = true
				}
			}
			i++
			continue
		}
		r, sz := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '。' || r == '！' || r == '？' || r == '：':
			if len(toks) > 0 && !newSentence {
				toks[len(toks)-1].sentEnd = '.'
			}
			newSentence = true
			i += sz
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			j := i + sz
			for j < len(text) {
				d := text[j]
				if d < utf8.RuneSelf {
					if isWordChar(d) {
						j++
						continue
					}
					break
				}
				r2, sz2 := utf8.DecodeRuneInString(text[j:])
				if !unicode.IsLetter(r2) && !unicode.IsDigit(r2) && !unicode.Is(unicode.Mn, r2) && !unicode.Is(unicode.Mc, r2) {
					break
				}
				j += sz2
			}
			toks = appendTok(toks, text, i, j, newSentence)
			newSentence = false
			i = j
		default:
			i += sz
		}
	}
	return toks
}

func isWordChar(c byte) bool { return wordChars[c] }

// wordChars is the set isWordChar tests, as a table: one load instead of four range tests, for
// every byte the tokenizer reads.
var wordChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '_'
	}
	return t
}()

// lexLookup is lexicon[w] behind lexFilter, which every lexicon word passes (addWords sets both).
func lexLookup(w string) uint32 {
	if w == "" || !lexFilter.has(w) {
		return 0
	}
	return lexTab.get(w)
}

func appendTok(toks []token, text string, i, j int, start bool) []token {
	w := text[i:j]
	var cls uint32
	if lexFilter.has(w) {
		cls = lexTab.get(w)
	}
	if cls == 0 && len(w) > 2 && w[len(w)-2] == '\'' {
		cls = lexLookup(w[:len(w)-2]) // your's, response's
	}
	if cls == 0 && len(w) > 5 && strings.HasSuffix(w, "ing") {
		// Gerunds of the verb classes: "embedding", "featuring", "ignoring".
		const verbs = wOverride | wInsert | wTask | wReveal | wRespond
		stem := w[:len(w)-3]
		c := lexLookup(stem)
		// stem+"e" is looked up only when the filter admits a word of its length, first and last
		// byte: the concatenation costs more than the lookup.
		if lexFilter.hasKey(min(len(stem)+1, 15)<<12 | int(stem[0]&63)<<6 | int('e'&63)) {
			c |= lexTab.getE(stem)
		}
		if len(stem) > 3 && stem[len(stem)-1] == stem[len(stem)-2] {
			c |= lexLookup(stem[:len(stem)-1])
		}
		if c&verbs != 0 {
			return append(toks, token{start: int32(i), end: int32(j), cls: c & verbs, sentStart: start, gerund: true})
		}
	}
	return append(toks, token{start: int32(i), end: int32(j), cls: cls, sentStart: start})
}
