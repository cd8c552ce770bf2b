package classifier

import "strings"

// Concept features. Byte n-grams learn words, and a language the model never trained on shares
// none of them with English: "ignore the above instructions" and its Hindi translation have no
// n-gram in common. So words are also mapped, through a small multilingual lexicon, to the
// concept they name (an override verb, "previous", instructions, a reveal verb, the system
// prompt, a secret, a role ...), and the concepts of nearby words are features of their own:
// each concept, every unordered pair of it with the concepts of the three concept words before
// it (within conceptSpan stream bytes), and the unordered triple of it and the two before. The
// pairs and triples are unordered so that word order — "ignore the previous instructions",
// "instrucciones anteriores", verb-final Hindi and Japanese — does not matter. A model trained
// on English concept sequences then scores text in any language whose words map to the same
// concepts.
//
// A word maps by its stream bytes (lower case, digits folded), exactly or, failing that, by its
// first stemLen bytes when it is longer (so inflections share a listed word's stem: "ignorez",
// "ignorieren" — stems of 6 bytes for words that start with an ASCII letter, 12 for others, which
// are 6 Cyrillic or Arabic letters or 4 Devanagari code points). Scripts written without spaces
// (CJK, kana, Hangul) have no words to look up: there every two characters are looked up instead.

// Concept ids; 0 is no concept.
const (
	cOverride  uint8 = 1 + iota // ignore, disregard, forget, override, bypass
	cPrior                      // previous, above, earlier, original
	cInstr                      // instructions, rules, directives, commands, prompt
	cQuestion                   // question, request, task, query
	cOutputV                    // output, print, say, write, respond, display
	cReveal                     // reveal, show, repeat, tell, disclose, leak
	cSystem                     // system, hidden, initial, internal, confidential
	cYou                        // you, your
	cAll                        // all, any, every
	cDirect                     // directly, just, only, simply, instead
	cNow                        // now, from now on, henceforth
	cRole                       // act, pretend, roleplay, persona, character, simulate
	cUnbound                    // unrestricted, unfiltered, uncensored, jailbreak, limitless
	cNeg                        // no, not, never, without, don't
	cPolicy                     // ethics, morals, policy, restrictions, filters, safety, censorship
	cSecret                     // password, credentials, api key, token, secret
	cPlease                     // please, kindly
	cNew                        // new, updated, real
	cAI                         // ai, assistant, model, chatbot
	cMode                       // mode, developer
	cFollowing                  // following, below, next
	cPersonal                   // address, phone, email, social security, personal data, other users
	cReward                     // reward, pay, tip, bribe, money, bonus
	cFiction                    // imagine, hypothetical, story, fiction, game
	cHarm                       // hack, weapon, bomb, kill, illegal, drugs, steal
	cAnswer                     // answer, response, reply (the noun)
	cThink                      // think, consider, care
	cMust                       // must, have to, should
	cTranslate                  // translate
	nConcepts
)

// conceptSpan is how far back (in stream bytes) a concept pairs with earlier ones: about a
// sentence of twenty words in English, ten in Hindi.
const conceptSpan = 160

// conceptWords lists each concept's words, in many languages. A word may name one concept only
// (the first list that has it wins).
var conceptWords = [...]struct {
	c     uint8
	words string
}{
	{cOverride, `ignore ignores ignored ignoring disregard disregarding forget forgetting override overriding
		overwrite bypass bypassing circumvent neglect discard dismiss abandon skip nullify void cancel scrap
		ignora ignoren ignorar ignore olvida olviden olvidar olvide descarta descartar omite omitir
		ignorez ignorer oublie oubliez oublier
		ignoriere ignorieren ignorier ignorieren vergiss vergesst vergessen missachte missachten übergehe
		ignorem esqueça esqueca esquece esqueçam desconsidere desconsiderar
		ignorate dimentica dimenticate dimenticare trascura
		игнорируй игнорируйте игнорировать проигнорируй проигнорируйте забудь забудьте отбрось отбросьте пренебреги
		negeer vergeet zignoruj ignoruj zapomnij pomiń ігноруй проігноруй забудь ignorera glöm strunta
		unut unutun yoksay görmezden abaikan lupakan abaikanlah
		अनदेखा अनदेखी भूल भूलो भूलें नज़रअंदाज़ नजरअंदाज उपेक्षा
		تجاهل تجاهلي تجاهلوا انس انسى اهمل أهمل تغاضى
		نادیده فراموش
		উপেক্ষা ভুলে  অগ্রাহ্য
		puuza sahau התעלם התעלמי שכח שכחי
		ignorá ignoralo ignórala ignóralas ignóralos ignorando olvídate olvidate olvides olvidá omita
		omitan descarten desestima desestime sáltate ignorant oubliant oubliez-les ignorez-les négligez
		ignorierst vergesse verwirf verwerfe verwerft überspringe esqueci esquecer descarte desconsidera
		ignorare scordati scorda dimentichi tralascia игнорируя проигнорировав забыв отбросив пропусти
		пропустите отмени отмените نظرانداز بھول بھولیں بھولو दुर्लक्ष विसरा विसरून विसर अनदेखे अनसुना
		अनसुनी भुला भुलाकर भूलकर भूलिए छोड़ें छोड़ो छोड़िए अवहेलना दरकिनार नज़रअंदाज উপেক্ষো উপেক্ষাকরুন
		ভুলুন ভুলো যান এড়িয়ে تجاهلها تجاهلهم تجاهله وتجاهل فتجاهل تخطى تخط تخطي اترك أترك تناسى انسي
		انسوا أهملي విస్మరించండి విస్మరించు విస్మరించి పట్టించుకోకండి పట్టించుకోవద్దు మర్చిపోండి మరచిపోండి
		మర్చిపో புறக்கணி புறக்கணிக்கவும் புறக்கணித்து மறந்துவிடு மறந்துவிடுங்கள் மறந்து ਅਣਡਿੱਠਾ ਨਜ਼ਰਅੰਦਾਜ਼
		ਭੁੱਲ ਭੁੱਲੋ ਜਾਓ અવગણો અવગણના અવગણીને ભૂલી ભૂલો ನಿರ್ಲಕ್ಷಿಸಿ ನಿರ್ಲಕ್ಷಿಸು ಮರೆತುಬಿಡಿ ಮರೆಯಿರಿ ችላ እርሳ እርሺ
		ተወው phớt lờ quên pansinin balewalain kalimutan watsi manta lali hiraukan acuhkan zignorujcie
		negeren vergeten
		وتجاهلي فتجاهلي وتجاهلوا فتجاهلوا وانس فانس وانسى فانسى واهمل فاهمل وأهمل فأهمل وتغاضى فتغاضى
		وفراموش ففراموش ونظرانداز فنظرانداز وبھول فبھول وبھولو فبھولو وتجاهلها فتجاهلها وتجاهلهم فتجاهلهم
		وتجاهله فتجاهله وفتجاهل ففتجاهل وتخطى فتخطى وتخط فتخط وتخطي فتخطي واترك فاترك وأترك فأترك وتناسى
		فتناسى وانسي فانسي وانسوا فانسوا وأهملي فأهملي`},
	{cPrior, `previous previously prior above earlier preceding former foregoing original aforementioned old
		anterior anteriores previa previas previo previos precedentes antiguas arriba
		précédentes précédents précédente précédent antérieures antérieurs dessus
		vorherigen vorherige vorigen bisherigen obigen obige oben früheren vorangegangenen
		prévias acima precedenti precedente sopra
		предыдущие предыдущих предыдущее предыдущую прежние вышеуказанные вышеприведенные приведенный приведенные выше ранее
		vorige eerdere poprzednie poprzednich powyższe wcześniejsze попередні вище tidigare ovanstående
		önceki yukarıdaki sebelumnya sebelum 
		पिछले पिछली पिछला पहले ऊपर उपरोक्त पूर्ववर्ती
		السابقة السابق أعلاه اعلاه المذكورة المذكور والمذكور
		قبلی بالا
		পূর্ববর্তী আগের উপরের উপরে পূর্বের উপরোক্ত
		yaliyotangulia zilizopita הקודמות הקודמים
		anteriormente mencionadas mencionados antedichas ci-dessus précédemment auparavant vorhergehenden
		vorstehenden obenstehenden antecedentes precedentemente suddette вышеизложенные предшествующие
		раньше پچھلی پچھلے سابقہ اوپر مذکورہ मागील आधीच्या वरील उपर्युक्त उल्लिखित পূর্বে আগে উপর্যুক্ত
		আগেকার السالفة الماضية المسبقة السابقه المذكوره మునుపటి ముందటి పైన முந்தைய மேலே முன்பு ਪਿਛਲੀਆਂ
		ਪਿਛਲੇ ਪਿਛਲੀ ਉੱਪਰ અગાઉની અગાઉના પાછલી પાછલા ઉપરની ઉપરના ಹಿಂದಿನ ಮೇಲಿನ ቀዳሚ ቀደም trước nakaraang
		naunang itaas gabata tadi terdahulu wcześniej powyżej wyżej eerder hierboven
		bovenstaande voorgaande
		والسابقة بالسابقة للسابقة فالسابقة والسابق بالسابق للسابق فالسابق وأعلاه واعلاه والمذكورة
		بالمذكورة للمذكورة فالمذكورة وبالا والسالفة بالسالفة للسالفة فالسالفة والماضية بالماضية للماضية
		فالماضية والمسبقة بالمسبقة للمسبقة فالمسبقة والسابقه بالسابقه للسابقه فالسابقه والمذكوره بالمذكوره
		للمذكوره فالمذكوره`},
	{cInstr, `instruction instructions prompt prompts rule rules directive directives guideline guidelines
		command commands  programming
		instrucción instruccion instrucciones reglas indicaciones órdenes ordenes directrices directriz comando
		consigne consignes règles regles directive commande
		anweisung anweisungen instruktionen regeln befehl befehle vorgaben richtlinien
		instrução instrucao instruções instrucoes regras orientações
		istruzione istruzioni regole indicazioni direttive
		инструкции инструкций инструкцию инструкция указания указаний правила команду команды команда промпт
		instructies regels instrukcje polecenia zasady інструкції вказівки instruktioner regler
		talimat talimatlar talimatları kuralları komutları instruksi perintah aturan petunjuk
		निर्देश निर्देशों निर्देशो नियम नियमों आदेश
		التعليمات تعليمات الأوامر الاوامر القواعد الأمر الامر التوجيهات
		دستورالعمل دستورات قوانین
		নির্দেশ নির্দেশাবলী নির্দেশনা নিয়ম আদেশ
		maagizo maelekezo ההוראות הוראות
		normas pautas consignas mandatos ordres anordnungen comandos ordens diretrizes comandi ordini
		norme инструкциям инструкциями указаниям правилам распоряжения ہدایات ہدایت احکامات احکام اصول
		قواعد सूचना सूचनांचे सूचनां आदेशों अनुदेश अनुदेशों हिदायत हिदायतें कमांड प्रॉम्प्ट प्रोम्प्ट
		निर्देशन নির্দেশগুলি নির্দেশগুলো নির্দেশাবলি আদেশগুলি নিয়মগুলি প্রম্পট কমান্ড التعليمة الإرشادات
		الارشادات وتعليمات والتعليمات تعليماتك أوامر اوامر సూచనలు సూచనల నియమాలు ఆదేశాలు அறிவுறுத்தல்கள்
		அறிவுறுத்தல்களை வழிமுறைகள் விதிகள் கட்டளைகள் ਹਦਾਇਤਾਂ ਨਿਰਦੇਸ਼ ਨਿਯਮ સૂચનાઓ સૂચનો નિયમો આદેશો
		ಸೂಚನೆಗಳನ್ನು ಸೂಚನೆಗಳು ನಿಯಮಗಳು መመሪያዎችን መመሪያ ህጎች lệnh tagubilin utos panuntunan alituntunin umarni
		umarnin dokoki prentah arahan peraturan
		opdrachten opdracht
		بالتعليمات للتعليمات فالتعليمات والأوامر بالأوامر للأوامر فالأوامر والاوامر بالاوامر للاوامر
		فالاوامر والقواعد بالقواعد للقواعد فالقواعد والأمر بالأمر للأمر فالأمر والامر بالامر للامر فالامر
		والتوجيهات بالتوجيهات للتوجيهات فالتوجيهات ودستورالعمل ودستورات واصول وقواعد والتعليمة بالتعليمة
		للتعليمة فالتعليمة والإرشادات بالإرشادات للإرشادات فالإرشادات والارشادات بالارشادات للارشادات
		فالارشادات وتعليماتك وأوامر واوامر`},
	{cQuestion, `question questions request requests task tasks query
		pregunta preguntas solicitud tarea question questions demande tâche frage fragen aufgabe
		pergunta perguntas domanda domande compito вопрос вопросы вопросу запрос задание задачу
		pytanie питання fråga soru görev pertanyaan tugas
		प्रश्न प्रश्नों सवाल सवालों अनुरोध कार्य
		السؤال سؤال الأسئلة الاسئلة الطلب المهمة
		سوال درخواست প্রশ্ন প্রশ্নগুলি অনুরোধ কাজ swali שאלה
		consulta پرسش سوالات سوالوں प्रश्नाचे প্রশ্নটি প্রশ্নের প্রশ্নগুলো أسئلة اسئلة سؤالي السؤالين
		ప్రశ్న ప్రశ్నలు ప్రశ్నను கேள்வி கேள்விகள் கேள்வியை ਸਵਾਲ ਸਵਾਲਾਂ પ્રશ્ન પ્રશ્નો સવાલ ಪ್ರಶ್ನೆ
		ಪ್ರಶ್ನೆಗಳು ጥያቄ ጥያቄዎች hỏi tanong tambaya pitakon
		vraag vragen
		والسؤال بالسؤال للسؤال فالسؤال وسؤال والأسئلة بالأسئلة للأسئلة فالأسئلة والاسئلة بالاسئلة للاسئلة
		فالاسئلة والطلب بالطلب للطلب فالطلب والمهمة بالمهمة للمهمة فالمهمة وسوال ودرخواست وسوالات وسوالوں
		وأسئلة واسئلة وسؤالي والسؤالين بالسؤالين للسؤالين فالسؤالين`},
	{cOutputV, `output outputs print say write respond reply display  produce generate  emit
		imprime escribe responde  muestra salida genera
		affiche affichez afficher écris écrivez répondez dites sortie
		ausgeben gib geben schreibe schreiben antworte sag sagen ausgabe
		escreva responda diga imprima exiba stampa scrivi rispondi dì
		выведи выведите выводите выводи вывод напиши напишите скажи скажите ответь ответьте печатай
		wypisz napisz виведи напиши skriv yaz yazdır tulis cetak
		आउटपुट लिखें लिखो बताएं कहें छापें प्रिंट जवाब
		اكتب اطبع أخرج الإخراج الناتج 
		بنویس چاپ خروجی আউটপুট লিখুন লিখ বলুন প্রিন্ট andika כתוב הדפס
		escriba escribir imprimir emite emita emitir produzca producir devuelve devuelva genere generar
		contesta conteste écrire imprimez produisez ausgibst drucke drucken escrever produza gere scrivere
		stampi вывести печатайте напечатай напечатайте لکھیں لکھو لکھئے लिहा छापा लिखिए लिखना बोलें बोलो
		कहो कहिए कहिये प्रदर्शित उत्पन्न जनरेट লেখো লিখে বলো প্রদর্শন أخرجي اخرج إخراج اخراج بإخراج باخراج
		قل قولي اكتبي واكتب وقل واطبع أطبع రాయండి రాయి ముద్రించండి అవుట్పుట్ எழுது எழுதுங்கள் அச்சிடு
		வெளியீடு ਲਿਖੋ લખો છાપો ಬರೆಯಿರಿ ಬರೆ ጻፍ ጻፊ viết xuất nói isulat rubuta keluarkan keluaran
		schrijf schrijven geef
		فاكتب فاطبع وأخرج فأخرج والإخراج بالإخراج للإخراج فالإخراج والناتج بالناتج للناتج فالناتج وأخرجي
		فأخرجي واخرج فاخرج وإخراج فإخراج واخراج فاخراج وبإخراج فبإخراج وباخراج فباخراج فقل وقولي فقولي
		واكتبي فاكتبي وأطبع فأطبع`},
	{cReveal, `reveal reveals show repeat tell leak dump disclose share expose recite
		revela revelar muestra repite dime mostrar révèle révéler montre répète dis
		verrate zeige zeig wiederhole nenne revele mostre repita rivela mostra ripeti dimmi
		раскрой раскройте покажи покажите повтори повторите расскажи
		ujawnij pokaż powtórz покажи повтори visa upprepa göster tekrarla açıkla tunjukkan ulangi ungkapkan
		दिखाओ दिखाएं बताओ दोहराएं दोहराओ प्रकट खुलासा
		كشف اكشف أظهر اظهر كرر أعد إعادة
		نشان فاش تکرار দেখান প্রকাশ পুনরাবৃত্তি onyesha rudia גלה הצג חזור
		revélame revelen muéstrame muestre repítelo reformula reformule parafrasea parafrasee révélez
		montrez répétez redis reformulez paraphrasez divulguez verrat enthülle offenbare wiederholen
		repetir rivelare mostrare ripetere раскрыть показать повторить перефразируй перефразируйте ظاہر
		دکھائیں بتائیں دہرائیں उघड दाखवा सांगा बताइए बताना दिखाइए दोहराइए दोहराना দেখাও করুন পুনরায় أظهري
		اكشفي كرري أعيدي اعد وكرر أفصح افصح صياغة بصياغة వెల్లడించండి చూపించు చూపించండి చెప్పండి పునరావృతం
		வெளிப்படுத்து வெளிப்படுத்தவும் காட்டு காட்டவும் சொல்லுங்கள் ਦੱਸੋ ਦਿਖਾਓ ਦੁਹਰਾਓ જાહેર બતાવો કહો
		પુનરાવર્તન ಬಹಿರಂಗಪಡಿಸಿ ತೋರಿಸಿ ಹೇಳಿ ಪುನರಾವರ್ತಿಸಿ ግለጽ አሳይ ንገረኝ ድገም lộ lặp ibunyag ipakita sabihin
		ulitin nuna maimaita beritahu katakan
		toon herhaal onthul
		وكشف فكشف واكشف فاكشف وأظهر فأظهر واظهر فاظهر فكرر وأعد فأعد وإعادة فإعادة ونشان فنشان وفاش ففاش
		وأظهري فأظهري واكشفي فاكشفي وكرري فكرري وأعيدي فأعيدي واعد فاعد وأفصح فأفصح وافصح فافصح وصياغة
		فصياغة وبصياغة فبصياغة`},
	{cSystem, `system hidden initial internal confidential preprompt underlying
		sistema système systeme cachées caché oculto ocultas versteckten versteckte geheimen nascosto
		системный системные системное системная скрытые скрытый внутренние
		systemowy системні systemet sistem gizli sistem sisteminizin tersembunyi
		सिस्टम छिपे गुप्त आंतरिक النظام المخفية الداخلية سیستم পদ্ধতি সিস্টেম লুকানো mfumo המערכת
		خفیہ سسٹم پرامپٹ प्रणाली गोपनीय গোপন السري السرية సిస్టమ్ சிஸ்டம் ਸਿਸਟਮ સિસ્ટમ ಸಿಸ್ಟಮ್ ስርዓት thống
		systeem verborgen
		والنظام بالنظام للنظام فالنظام والمخفية بالمخفية للمخفية فالمخفية والداخلية بالداخلية للداخلية
		فالداخلية وسسٹم والسري بالسري للسري فالسري والسرية بالسرية للسرية فالسرية`},
	{cYou, `you your yours yourself thou tu tú usted ustedes vous votre vos  dein deine deinen ihre ihren sie
		você voce vocês seu sua tuo tua voi
		ты вы твой твои ваш ваши вам тебе jij  jouw ty twoje ти твої ваші din dina sen senin siz sizin
		kamu anda आप तुम आपके तुम्हारे आपको أنت انت لك الخاص تو شما آپ তুমি আপনি আপনার তোমার wewe אתה
		tus contigo ti vosotros آپکے تمہارے تمہیں तुम्ही तुमचे तुमच्या आपकी आपका तुम्हारा तुम्हारी तुम्हें
		তোমাকে আপনাকে তোর তুই তোমরা আপনারা عليك منك إليك لديك أنتِ మీరు మీ నువ్వు நீ நீங்கள் உங்கள் உன்
		ਤੁਸੀਂ ਤੁਹਾਡੇ ਤੁਹਾਡਾ ਤੁਹਾਡੀ તમે તમારા તમારી તું ನೀವು ನಿಮ್ಮ አንተ አንቺ እርስዎ bạn ikaw iyong kayo kana
		sampeyan kowe kau engkau
		uw jullie
		وأنت وانت ولك والخاص بالخاص للخاص فالخاص وتو وشما وعليك ومنك وإليك ولديك وأنتِ`},
	{cAll, `all any every everything entire whole todas todos toutes tous alle allen alles tutte tutti
		все всё всех всю wszystkie всі alla tüm bütün semua सभी सारे جميع كل تمام همه সমস্ত সব yote כל
		سب सर्व সকল সবকিছু كافة అన్ని అన్నీ அனைத்து எல்லா ਸਾਰੇ ਸਾਰੀਆਂ બધા બધી તમામ ಎಲ್ಲಾ ሁሉንም ሁሉም tất mọi
		lahat dukkan kabeh seluruh
		وجميع وكل وتمام وهمه وسب وكافة`},
	{cDirect, `directly just only simply instead straight merely
		directamente solo simplemente directement seulement simplement direkt einfach nur stattdessen
		diretamente apenas simplesmente direttamente semplicemente solo
		прямо просто только вместо bezpośrednio tylko прямо direkt bara doğrudan sadece langsung hanya
		सीधे बस केवल सिर्फ مباشرة فقط مستقیم فقط সরাসরি শুধু শুধুমাত্র moja ישירות רק
		únicamente sólo directo uniquement juste plutôt lediglich bloß somente soltanto лишь صرف سیدھا
		फक्त थेट सीधा मात्र সোজা কেবল কেবলমাত্র مباشره مباشرةً وفقط నేరుగా మాత్రమే కేవలం நேரடியாக மட்டும்
		ਸਿੱਧਾ ਸਿਰਫ਼ સીધા સીધું ફક્ત માત્ર ನೇರವಾಗಿ ಮಾತ್ರ በቀጥታ ብቻ trực chỉ direkta lamang kawai mung saja
		alleen slechts gewoon
		ومباشرة وصرف ومباشره ومباشرةً`},
	{cNow, `now henceforth onwards onward ahora maintenant jetzt nun agora ora adesso теперь сейчас
		teraz тепер nu şimdi artık sekarang अब الآن الان اکنون حالا এখন sasa עכשיו
		والآن بالآن للآن فالآن والان بالان للان فالان وحالا`},
	{cRole, `act acting pretend pretending roleplay role role-play impersonate simulate emulate persona
		character behave playing
		actúa finge rol personaje papel joue jouez prétends personnage rôle spiele  figur
		finja personagem finge fingi personaggio ruolo
		притворись сыграй играй роль персонаж веди udawaj odgrywaj rolę гра låtsas rol oyna karakter berpura peran
		अभिनय किरदार भूमिका बनो تظاهر دور الشخصية تقمص نقش وانمود অভিনয় চরিত্র ভূমিকা jifanya העמד תפקיד
		actúes actúe actúen actuar finjas fingir simula simules agis agissez incarne incarnez atue ভান
		تصرف تصرفي
		وتظاهر ودور والشخصية بالشخصية للشخصية فالشخصية وتقمص ونقش وتصرف وتصرفي`},
	{cUnbound, `unrestricted unfiltered uncensored jailbroken jailbreak limitless unlimited unbound unchained
		amoral unethical rogue evil dan
		ilimitado restricciones  illimité uneingeschränkt unzensiert ungefiltert irrestrito 
		неограниченный  цензуры sınırsız  असीमित `},
	{cNeg, `no not never without don dont cannot nothing
		nunca sin nada ne pas jamais sans rien nicht nie ohne kein keine nichts não nunca sem nenhum non  senza
		не нет никогда без nie bez ні не inte aldrig utan değil yok hiçbir asla tidak jangan tanpa
		नहीं न मत कभी बिना لا ليس لن بدون نه بدون না নয় কখনো ছাড়া bila hapana לא
		نہیں نہ مت नाही नको নেই নি কখনও لم ولا కాదు వద్దు లేదు இல்லை வேண்டாம் ਨਹੀਂ નહીં ಬೇಡ ಇಲ್ಲ không
		đừng huwag kada
		niet nooit zonder geen
		وليس ولن وبدون ونه ومت ولم`},
	{cPolicy, `ethics ethical morals moral policy policies restriction restrictions  safety
		censorship guardrails limitations limits constraints boundaries 
		ética ética moral políticas restricciones límites éthique morale restrictions limites
		ethik moral richtlinien einschränkungen grenzen etica restrizioni limiti restrições
		этика мораль ограничения ограничений правила политики цензура
		etyka ograniczenia обмеження etik begränsningar etik kısıtlama kısıtlamalar etika batasan
		नैतिकता प्रतिबंध सीमाएं नीति الأخلاق القيود السياسة سیاست محدودیت নৈতিকতা নীতি সীমাবদ্ধতা
		والأخلاق بالأخلاق للأخلاق فالأخلاق والقيود بالقيود للقيود فالقيود والسياسة بالسياسة للسياسة
		فالسياسة`},
	{cSecret, `password passwords passcode credential credentials token tokens apikey key keys secret secrets
		ssh pin login
		contraseña contraseñas clave credenciales  identifiants passwort passwörter kennwort zugangsdaten
		senha senhas credenciais chiave credenziali пароль пароли ключ учетные токен
		hasło klucz lösenord şifre parola anahtar  sandi kunci
		पासवर्ड कुंजी क्रेडेंशियल  المرور مفتاح رمز  گذرواژه পাসওয়ার্ড চাবি nenosiri סיסמה
		پاسورڈ গোপনীয় السر పాస్వర్డ్ రహస్య రహస్యం கடவுச்சொல் ரகசிய இரகசிய ਪਾਸਵਰਡ પાસવર્ડ ಪಾಸ್ವರ್ಡ್ የይለፍ
		mật khẩu lihim sikreto sirri rahasia
		wachtwoord wachtwoorden geheim sleutel
		والمرور بالمرور للمرور فالمرور ومفتاح ورمز والسر بالسر للسر فالسر`},
	{cPlease, `please kindly pls plz  favor veuillez merci bitte  favore
		пожалуйста proszę будь-ласка lütfen tolong silakan mohon कृपया يرجى الرجاء رجاء لطفا দয়া  tafadhali בבקשה
		porfavor مہربانی अनुग्रह অনুগ্রহ অনুগ্রহপূর্বক দয়াকরে فضلك فضلكم దయచేసి தயவுசெய்து தயவு ਕਿਰਪਾ
		કૃપા કૃપયા ದಯವಿಟ್ಟು እባክህ እባክዎ እባክሽ hãy pakiusap paki abeg tulung
		alsjeblieft alstublieft
		ويرجى والرجاء بالرجاء للرجاء فالرجاء ورجاء ولطفا وفضلك وفضلكم`},
	{cNew, `new updated real actual revised true latest nuevas nuevo nueva nouvelles nouveau nouvelle neue neuen neu
		novas nova novo nuove nuovo nuova новые новый новая новое nowe нові nya yeni baru नए नया نئی الجديدة جديدة جديد جدید নতুন mpya חדש
		والجديدة بالجديدة للجديدة فالجديدة وجديدة وجديد`},
	{cAI, `ai assistant chatbot bot model llm gpt chatgpt claude gemini copilot agent
		asistente modelo assistant modèle assistent modell assistente modello ассистент помощник модель бот
		asystent model асистент assistent asistan yapay asisten सहायक मॉडल مساعد النموذج دستیار মডেল সহকারী msaidizi עוזר
		ومساعد والنموذج بالنموذج للنموذج فالنموذج`},
	{cMode, `mode developer modo développeur modus entwickler modalità sviluppatore режим разработчика tryb mod
		mode मोड وضع حالت মোড hali מצב
		وحالت`},
	{cFollowing, `following below next subsequent siguiente siguientes abajo suivant suivante suivantes ci-dessous
		folgende folgenden unten seguinte seguintes abaixo seguente seguenti sotto следующий следующее следующую следующие ниже
		następujące poniżej наступне nedan följande aşağıdaki şunu berikut  निम्नलिखित नीचे التالي التالية أدناه زیر নিম্নলিখিত নিচে ifuatayo הבא
		والتالي بالتالي للتالي فالتالي والتالية بالتالية للتالية فالتالية وأدناه`},
	{cPersonal, `address phone email emails ssn social-security birthday salary medical records personal private
		 neighbor neighbour 
		dirección teléfono correo adresse téléphone  adresse telefon telefonnummer endereço telefone indirizzo telefono
		адрес телефон почта личные персональные adres telefon adres telepon alamat पता फोन ईमेल निजी العنوان الهاتف البريد الشخصية آدرس تلفن ঠিকানা ফোন ব্যক্তিগত anwani simu כתובת טלפון
		والعنوان بالعنوان للعنوان فالعنوان والهاتف بالهاتف للهاتف فالهاتف والبريد بالبريد للبريد فالبريد
		وآدرس وتلفن`},
	{cReward, `reward pay paid tip tips bribe money bonus dollars cash payment tipping $
		recompensa pagaré propina dinero récompense payer pourboire argent belohnung bezahle trinkgeld geld
		recompensa gorjeta dinheiro ricompensa mancia soldi награда заплачу деньги чаевые nagroda zapłacę pieniądze
		ödül parayı parası bahşiş hadiah uang bayar इनाम पैसे पैसा مكافأة المال سأدفع پاداش پول পুরস্কার টাকা zawadi pesa פרס כסף
		ومكافأة والمال بالمال للمال فالمال وسأدفع`},
	{cFiction, `imagine hypothetical hypothetically fictional fiction story novel game scenario suppose
		imagina hipotético ficción historia juego imagine hypothétique fiction histoire jeu  hypothetisch fiktion geschichte spiel
		imagine hipotético ficção história jogo immagina ipotetico finzione storia gioco
		представь представьте гипотетически вымышленный история игра wyobraź уяви föreställ hayal hayali bayangkan
		कल्पना काल्पनिक कहानी खेल تخيل افتراضي قصة لعبة تصور داستان কল্পনা গল্প খেলা fikiria דמיין
		وتخيل وافتراضي وقصة ولعبة وتصور وداستان`},
	{cHarm, `hack hacking hacker malware virus weapon weapons bomb explosive kill murder poison illegal drugs steal
		stealing fraud phishing exploit ransomware meth suicide violence
		hackear arma bomba matar veneno ilegal drogas robar fraude pirater arme bombe tuer poison illégal drogue voler
		hacken waffe bombe töten gift illegal drogen stehlen betrug arma bomba uccidere veleno illegale rubare
		взломать взлом оружие бомба убить яд незаконно наркотики украсть мошенничество насилие
		włamać broń bomba zabić silah bomba öldür yasadışı uyuşturucu senjata bom bunuh ilegal narkoba mencuri
		हैक हैकिंग हथियार बम मारना जहर अवैध ड्रग्स चोरी हिंसा اختراق سلاح قنبلة قتل   مخدرات سرقة عنف
		هک سلاح بمب کشتن হ্যাক অস্ত্র বোমা হত্যা অবৈধ মাদক চুরি সহিংসতা silaha bomu kuua פריצה נשק פצצה
		واختراق وسلاح وقنبلة وقتل ومخدرات وسرقة وعنف وبمب`},
	{cAnswer, `answer answers response responses reply replies
		respuesta respuestas réponse réponses antwort antworten resposta respostas risposta risposte
		ответ ответа ответы ответе odpowiedź відповідь svar cevap yanıt jawaban balasan
		उत्तर जवाब الإجابة اجابة الرد إجابة پاسخ উত্তর jibu תשובה
		جواب جوابات উত্তরটি উত্তরে الجواب إجابتك ردك الإجابات సమాధానం జవాబు பதில் ਜਵਾਬ જવાબ ಉತ್ತರ መልስ đáp
		sagot amsa wangsulan jawab
		antwoord antwoorden
		والإجابة بالإجابة للإجابة فالإجابة واجابة والرد بالرد للرد فالرد وإجابة وجواب وجوابات والجواب
		بالجواب للجواب فالجواب وإجابتك وردك والإجابات بالإجابات للإجابات فالإجابات`},
	{cThink, `think consider care worry piensa pienses pensar considera pensez pensez-vous penser denke denken
		pense pensa pensi думай думайте думать подумайте myśl думай tänk düşün düşünme pikirkan
		सोचें सोचो सोचिए विचार فكر تفكر التفكير فکر ভাবুন ভাববেন চিন্তা fikiri חשוב
		وفكر وتفكر والتفكير بالتفكير للتفكير فالتفكير`},
	{cMust, `must should have need needs shall debes debe deberías dois doit devez musst muss solltest sollst
		deve devi должен должны обязан musisz мусиш måste malısın harus चाहिए يجب باید উচিত lazima חייב
		ويجب`},
	{cTranslate, `translate translation traduce traducir traduis traduire übersetze übersetzen traduza traduci
		переведи переведите перевод przetłumacz переклади översätt çevir terjemahkan अनुवाद ترجم ترجمة ترجمه অনুবাদ tafsiri תרגם
		وترجم وترجمة وترجمه`},
}

// cjkWords are two-character words of scripts written without spaces (Chinese, Japanese,
// Korean), looked up at every pair of such characters.
var cjkWords = [...]struct {
	c     uint8
	words string
}{
	{cOverride, `忽略 无视 無視 忘记 忘記 忘掉 跳过 绕过 繞過 무시 잊어 잊고`},
	{cPrior, `上述 上面 以上 之前 先前 前面 上記 以前 前の 이전 위의 앞의`},
	{cInstr, `指令 指示 命令 规则 規則 提示  지시 명령 규칙 지침 프롬`},
	{cQuestion, `问题 問題 質問 请求 任务 任務 질문 요청 작업`},
	{cOutputV, `输出 輸出 出力 打印 回复 写出 說出 说出 출력 인쇄 말해 작성`},
	{cReveal, `透露 显示 顯示 泄露 重复 重複 展示 表示 繰り 공개 보여 반복 누설`},
	{cSystem, `系统 系統 隐藏 隱藏 内部 内部 秘密 시스 숨겨 내부`},
	{cYou, `你的 你们 您的 あなた 君の 당신 너의`},
	{cAll, `所有 一切 全部 すべ 全て 모든 전부`},
	{cDirect, `直接 只需 只要 仅仅 ただ 単に 바로 직접 그냥 단지`},
	{cNow, `现在 現在 今から 이제 지금`},
	{cRole, `扮演 假装 假裝 角色 演じ ふり 役割 역할 연기 척하`},
	{cUnbound, `无限 不受 無制 제한없 탈옥 越狱 脫獄 脱獄`},
	{cNeg, `不要 不是 没有 不用 别想 しな ない 없이 않고 하지 말고`},
	{cPolicy, `道德 伦理 倫理 限制 制限 规范 審查 审查 검열 윤리 도덕 제한`},
	{cSecret, `密码 密碼 パス 秘钥 密钥 비밀 암호 토큰`},
	{cPlease, `请你 請你 请将 请把 ください 주세요 해주 부탁`},
	{cAI, `助手 模型 人工 アシ 助理 모델 어시 인공`},
	{cFollowing, `以下 下面 如下 次の 다음 아래`},
	{cAnswer, `答案 回答 回答 答え 대답 답변 응답`},
	{cThink, `认为 認為 考虑 思い 考え 생각`},
	{cTranslate, `翻译 翻譯 翻訳 번역`},
	{cHarm, `黑客 武器 炸弹 炸彈 杀人 毒品 非法 违法 ハッ 爆弾 殺す 違法 해킹 무기 폭탄 불법 마약`},
}

// conceptTable maps keys (a word's hash, a word stem's, or two CJK characters') to concepts: an
// open-addressing table of full 64-bit keys behind a bitmap filter that most keys fail.
type conceptTable struct {
	keys   [conceptSlots]uint64
	vals   [conceptSlots]uint8
	filter [1 << (conceptFilterBits - 6)]uint64
}

const (
	conceptSlots = 1 << 14
	// conceptFilterBits sizes the filter: 2^17 bits (16 KiB) for the lexicon's keys, so that a
	// word it lacks passes a probe rarely (TestConceptFilterSparse bounds the share of set bits).
	// Every pass stops Score's byte loop for a lookup outside it, at a cost of a hundred
	// instructions or so.
	conceptFilterBits = 17
	stemSalt          = 0x6a09e667f3bcc909
	cjkSalt           = 0xbb67ae8584caa73b
	mask6             = 1<<48 - 1
)

// stemLen is how many stream bytes of a word starting with byte c its stem keeps.
func stemLen(c byte) int {
	if c < 0x80 {
		return 6
	}
	return 12
}

// conceptKey mixes a key so that its top bits index the filter and its low bits the table.
func conceptKey(x uint64) uint64 { return (x ^ x>>29) * mulHash }

func (t *conceptTable) add(key uint64, c uint8) {
	k := conceptKey(key)
	i := k & (conceptSlots - 1)
	for t.vals[i] != 0 {
		if t.keys[i] == k {
			return // the first concept listed wins
		}
		i = (i + 1) & (conceptSlots - 1)
	}
	t.keys[i], t.vals[i] = k, c
	t.filter[k>>(64-conceptFilterBits)>>6] |= 1 << (k >> (64 - conceptFilterBits) & 63)
}

// mayHave reports whether key may be in the table (false: it certainly is not).
func (t *conceptTable) mayHave(key uint64) bool {
	k := conceptKey(key)
	return t.filter[k>>(64-conceptFilterBits)>>6]&(1<<(k>>(64-conceptFilterBits)&63)) != 0
}

// get returns the concept of key, 0 for none.
func (t *conceptTable) get(key uint64) uint8 {
	k := conceptKey(key)
	if t.filter[k>>(64-conceptFilterBits)>>6]&(1<<(k>>(64-conceptFilterBits)&63)) == 0 {
		return 0
	}
	for i := k & (conceptSlots - 1); t.vals[i] != 0; i = (i + 1) & (conceptSlots - 1) {
		if t.keys[i] == k {
			return t.vals[i]
		}
	}
	return 0
}

// wordHash is the featurizer's hash of a word's stream bytes, and of their first n when n > 0.
func wordHash(w string, n int) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(w) && (n <= 0 || i < n); i++ {
		h = (h ^ uint64(streamByte[w[i]])) * fnvPrime
	}
	return h
}

var concepts = func() *conceptTable {
	t := new(conceptTable)
	n := 0
	// Exact words first, then stems, so that a listed word always maps to its own concept.
	for _, l := range conceptWords {
		for _, w := range strings.Fields(l.words) {
			w = strings.ToLower(w)
			for _, part := range strings.FieldsFunc(w, func(r rune) bool { return r < 0x80 && streamByte[byte(r)] == 0 }) {
				t.add(wordHash(part, 0), l.c)
				n++
			}
		}
	}
	for _, l := range conceptWords {
		for _, w := range strings.Fields(l.words) {
			w = strings.ToLower(w)
			for _, part := range strings.FieldsFunc(w, func(r rune) bool { return r < 0x80 && streamByte[byte(r)] == 0 }) {
				if sl := stemLen(part[0]); len(part) >= sl {
					t.add(wordHash(part, sl)^stemSalt, l.c)
					n++
				}
			}
		}
	}
	for _, l := range cjkWords {
		for _, w := range strings.Fields(l.words) {
			if len(w) >= 6 {
				t.add(cjkKey(w[:6]), l.c)
				n++
			}
		}
	}
	if 2*n > conceptSlots {
		panic("classifier: concept lexicon too large for its table")
	}
	return t
}()

// cjkKey is the key of six stream bytes (two characters of three bytes each).
func cjkKey(s string) uint64 {
	var x uint64
	for i := 0; i < 6; i++ {
		x = x<<8 | uint64(s[i])
	}
	return x&mask6 ^ cjkSalt
}

// isCJKPair reports whether the last six stream bytes in h are two characters of three bytes
// whose lead bytes lie in E3–ED (kana, CJK ideographs, Hangul): scripts without spaces.
func isCJKPair(h uint64) bool {
	a, b := byte(h>>40), byte(h>>16)
	return a >= 0xe3 && a <= 0xed && b >= 0xe3 && b <= 0xed && byte(h)&0xc0 == 0x80
}

// conceptState is the recent concepts a new one pairs with.
type conceptState struct {
	last [3]uint8
	at   [3]int32 // stream positions of last
}

// maxConceptFeatures is the most features one concept occurrence adds: itself, three pairs, a
// triple.
const maxConceptFeatures = 5

// emit records concept c seen at stream position pos and stores the buckets of its features in
// out, returning how many.
func (s *conceptState) emit(c uint8, pos int32, out *[maxConceptFeatures]uint32) int {
	if s.last[0] == c && pos-s.at[0] < conceptSpan {
		// The same concept again nearby ("you … your"): nothing new to pair.
		s.at[0] = pos
		return 0
	}
	n := 1
	out[0] = bucket(uint64(c), seedConcept)
	for k := 0; k < 3; k++ {
		if s.last[k] == 0 || pos-s.at[k] >= conceptSpan {
			break
		}
		a, b := c, s.last[k]
		if a > b {
			a, b = b, a
		}
		out[n] = bucket(uint64(a)<<8|uint64(b), seedConceptPair)
		n++
		if k == 1 {
			x := [3]uint8{c, s.last[0], s.last[1]}
			sort3(&x)
			out[n] = bucket(uint64(x[0])<<16|uint64(x[1])<<8|uint64(x[2]), seedConceptTriple)
			n++
		}
	}
	s.last[2], s.last[1], s.last[0] = s.last[1], s.last[0], c
	s.at[2], s.at[1], s.at[0] = s.at[1], s.at[0], pos
	return n
}

func sort3(x *[3]uint8) {
	if x[0] > x[1] {
		x[0], x[1] = x[1], x[0]
	}
	if x[1] > x[2] {
		x[1], x[2] = x[2], x[1]
	}
	if x[0] > x[1] {
		x[0], x[1] = x[1], x[0]
	}
}

// wordConcept is the concept of the word that just ended: word is its hash, stem the hash of its
// first stemLen bytes (valid when long).
func wordConcept(word, stem uint64, long bool) uint8 {
	if c := concepts.get(word); c != 0 {
		return c
	}
	if long {
		return concepts.get(stem ^ stemSalt)
	}
	return 0
}
